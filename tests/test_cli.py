"""The command line without a mail server: import, customers, demo, errors."""

from __future__ import annotations

import json
import mailbox
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailbot.demo import CUSTOMERS, demo_messages

from .helpers import MINIMAL_CONFIG, cli, env

CONFIG = MINIMAL_CONFIG

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def _config(tmp: Path) -> Path:
    p = tmp / "config.toml"
    p.write_text(CONFIG)
    return p


def _mbox(tmp: Path) -> Path:
    path = tmp / "export.mbox"
    box = mailbox.mbox(str(path))
    for raw in demo_messages(NOW):
        box.add(raw)
    box.close()
    return path


def test_import_mbox_then_maildir_of_the_same_mail_adds_nothing_twice(tmp_path: Path) -> None:
    config = _config(tmp_path)
    r = cli(config, "import", str(_mbox(tmp_path)))
    assert r.returncode == 0, r.stderr
    rows = {row["address"]: row for row in json.loads(cli(config, "customers", "--json").stdout)}
    assert set(rows) == {addr for _n, addr, _g, _c in CUSTOMERS}
    assert set(next(iter(rows.values()))) == {
        "address", "name", "status", "first_seen", "last_inbound", "last_outbound",
        "touchpoints", "needs_reply"}
    total = sum(r["touchpoints"] for r in rows.values())
    # demo: every customer message is answered except Tom's and Lee's newest
    expected = sum(2 * n for _name, _a, _g, n in CUSTOMERS) - 2
    assert total == expected
    assert rows["tom@becker-family.example"]["needs_reply"] is True
    assert rows["ana.lima@example.net"]["needs_reply"] is False
    assert rows["ana.lima@example.net"]["name"] == "Ana Lima"

    md = mailbox.Maildir(str(tmp_path / "Maildir"))
    for raw in demo_messages(NOW):
        md.add(raw)
    r = cli(config, "import", str(tmp_path / "Maildir"))
    assert r.returncode == 0, r.stderr
    assert "0 new touchpoints" in r.stdout
    again = json.loads(cli(config, "customers", "--json").stdout)
    assert sum(r["touchpoints"] for r in again) == expected


def test_customer_timeline_and_why_a_sender_is_not_a_customer(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert cli(config, "import", str(_mbox(tmp_path))).returncode == 0
    r = cli(config, "customer", "lee.wong@example.com", "--json")
    data = json.loads(r.stdout)
    assert data["timeline"][-1]["subject"] == "Parcel arrived damaged"
    assert "disappointed" in data["timeline"][-1]["snippet"]
    r = cli(config, "customer", "news@linenweekly.example")
    assert r.returncode == 0
    assert "bulk" in r.stdout and "List-Id" in r.stdout
    r = cli(config, "customer", "nobody@nowhere.example")
    assert r.returncode == 1 and "not known" in r.stderr


def test_import_customers_csv_marks_and_skips_bad_rows(tmp_path: Path) -> None:
    config = _config(tmp_path)
    csv = tmp_path / "customers.csv"
    csv.write_text("email,name,value,tags\nana@x.example,Ana Lima,1200,vip;linen\n"
                   "not-an-address,Bob,,\nTOM@Y.example,Tom,,\n", encoding="utf-8")
    r = cli(config, "import-customers", str(csv))
    assert r.returncode == 0, r.stderr
    assert "2 customers imported, 1 lines skipped" in r.stdout
    assert "line 3" in r.stderr
    rows = {row["address"]: row for row in json.loads(cli(config, "customers", "--json").stdout)}
    assert set(rows) == {"ana@x.example", "tom@y.example"}
    assert rows["ana@x.example"]["name"] == "Ana Lima"
    bad = tmp_path / "bad.csv"
    bad.write_text("mail,name\nx@y.example,X\n")
    r = cli(config, "import-customers", str(bad))
    assert r.returncode == 1 and "at least 'email'" in r.stderr


def test_import_refuses_what_is_not_a_mailbox(tmp_path: Path) -> None:
    config = _config(tmp_path)
    junk = tmp_path / "junk.txt"
    junk.write_text("hello")
    r = cli(config, "import", str(junk))
    assert r.returncode == 1 and "not an mbox file" in r.stderr
    assert not (tmp_path / "data" / "mailbot.json").exists()


def test_a_broken_config_is_one_clear_sentence_and_exit_78(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_text(CONFIG.replace('security = "none"', 'security = "nope"', 1))
    r = cli(p, "customers")
    assert r.returncode == 78
    assert "[imap] security" in r.stderr and "Traceback" not in r.stderr


def test_an_unreadable_database_stops_with_a_clear_error_and_is_kept(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "data").mkdir()
    db = tmp_path / "data" / "mailbot.json"
    db.write_text("{not json")
    r = cli(config, "import", str(_mbox(tmp_path)))
    assert r.returncode == 78 and "not valid JSON" in r.stderr
    assert db.read_text() == "{not json"


def test_run_without_config_runs_the_demo(tmp_path: Path) -> None:
    import subprocess
    import sys

    e = env()
    r = subprocess.run([sys.executable, "-m", "mailbot", "run"], capture_output=True, text=True,
                       timeout=120, env=e, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "running the bundled demo" in r.stderr
    assert "Tom Becker" in r.stdout and "people to write to today" in r.stdout


def test_digest_preview_as_of_a_date(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert cli(config, "import", str(_mbox(tmp_path))).returncode == 0
    day = (NOW + timedelta(days=1)).date().isoformat()
    r = cli(config, "digest", "--preview", "--as-of", day)
    assert r.returncode == 0, r.stderr
    assert "Subject: " in r.stdout and "Reply above this line" in r.stdout
    r = cli(config, "digest", "--preview", "--as-of", "tomorrow")
    assert r.returncode == 1 and "--as-of" in r.stderr


def test_a_refused_imap_login_keeps_the_servers_words() -> None:
    from imapclient.exceptions import LoginError

    from mailbot.imap import _server_text

    said = _server_text(LoginError(b"[ALERT] Application-specific password required: "
                                   b"https://support.google.com/mail/?p=InvalidSecondFactor"))
    assert said.startswith("[ALERT] Application-specific password required")
    assert not said.startswith("b'")
    assert len(_server_text(LoginError("x" * 1000))) == 200
