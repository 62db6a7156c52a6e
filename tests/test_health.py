"""Health without a mail server: alerts with an injected clock, heartbeat, unit file, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailbot.health import (
    DIGEST,
    LOGIN,
    MAX_ERRORS,
    Alerts,
    Health,
    alert_message,
    daemon_state,
    default_unit_path,
    no_connection_for,
    read_heartbeat,
    recent_errors,
    unit_text,
    write_heartbeat,
)

from .helpers import MINIMAL_CONFIG, cli

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)

CONFIG = MINIMAL_CONFIG


# --------------------------------------------------------------------------- alerts


def test_an_alert_is_sent_once_then_at_most_daily_then_cleared_once() -> None:
    a = Alerts()
    assert a.raise_(LOGIN, T0)
    assert not a.raise_(LOGIN, T0 + timedelta(minutes=5))
    assert not a.raise_(LOGIN, T0 + timedelta(hours=23, minutes=59))
    assert a.raise_(LOGIN, T0 + timedelta(days=1))
    assert not a.raise_(LOGIN, T0 + timedelta(days=1, hours=1))
    assert a.active() == [LOGIN]
    assert a.since(LOGIN) == T0
    assert a.clear(LOGIN, T0 + timedelta(days=1, hours=2))
    assert not a.clear(LOGIN, T0 + timedelta(days=1, hours=3))
    assert a.active() == []
    # it comes back: a new alert at once
    assert a.raise_(LOGIN, T0 + timedelta(days=1, hours=4))


def test_clearing_a_problem_never_raised_sends_nothing() -> None:
    assert not Alerts().clear(DIGEST, T0)


def test_problems_are_independent_and_the_state_survives_a_restart() -> None:
    a = Alerts()
    assert a.raise_(LOGIN, T0)
    assert a.raise_(DIGEST, T0 + timedelta(minutes=1))
    saved = json.loads(json.dumps(a.to_dict()))  # as in the kv table
    b = Alerts(saved)
    assert not b.raise_(LOGIN, T0 + timedelta(hours=2))
    assert b.clear(DIGEST, T0 + timedelta(hours=2))
    assert b.active() == [LOGIN]


def test_no_connection_counts_from_start_or_last_connection() -> None:
    assert no_connection_for(None, T0, T0 + timedelta(minutes=61)) == timedelta(minutes=61)
    last = T0 + timedelta(minutes=30)
    assert no_connection_for(last, T0, T0 + timedelta(minutes=61)) == timedelta(minutes=31)


def test_alert_messages_are_short_and_say_what_to_do() -> None:
    subject, body = alert_message(LOGIN, detail="refused the login")
    assert "log in" in subject and "refused the login" in body and "mailbot check" in body
    subject, body = alert_message(LOGIN, recovered=True)
    assert "again" in subject
    assert "\n" not in subject


# --------------------------------------------------------------------------- heartbeat


def _health() -> Health:
    return Health(pid=4242, version="0.1.0", started=T0)


def test_heartbeat_round_trip_is_atomic_and_private(tmp_path: Path) -> None:
    h = _health()
    h.note_sync("INBOX", T0)
    h.last_digest = "2026-11-24"
    path = tmp_path / "heartbeat.json"
    write_heartbeat(path, h.to_dict(T0))
    hb = read_heartbeat(path)
    assert hb is not None
    assert hb["pid"] == 4242 and hb["last_sync"] == {"INBOX": T0.isoformat()}
    assert hb["last_digest"] == "2026-11-24" and hb["updated"] == T0.isoformat()
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["heartbeat.json"]  # no temp file left
    assert read_heartbeat(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert read_heartbeat(tmp_path / "bad.json") is None


def test_errors_are_bounded_and_filtered_to_the_last_day() -> None:
    h = _health()
    for i in range(MAX_ERRORS + 10):
        h.note_error(f"error {i}", T0 + timedelta(minutes=i))
    assert len(h.errors) == MAX_ERRORS
    assert h.errors[-1]["message"] == f"error {MAX_ERRORS + 9}"
    assert h.last_error == f"error {MAX_ERRORS + 9}"
    hb = h.to_dict(T0)
    later = T0 + timedelta(hours=24, minutes=30)
    recent = recent_errors(hb, later)
    assert recent and all(datetime.fromisoformat(e["time"]) >= later - timedelta(hours=24)
                          for e in recent)
    assert recent_errors(None, later) == []


def test_daemon_state_needs_a_live_pid_and_a_fresh_heartbeat() -> None:
    hb = _health().to_dict(T0)
    hb["state"] = "watching"
    assert daemon_state(hb, T0 + timedelta(seconds=40), alive=True)[0]
    running, why = daemon_state(hb, T0 + timedelta(minutes=10), alive=True)
    assert not running and "stuck" in why
    running, why = daemon_state(hb, T0 + timedelta(seconds=40), alive=False)
    assert not running and "gone" in why
    hb["state"] = "stopped"
    running, why = daemon_state(hb, T0 + timedelta(seconds=1), alive=True)
    assert not running and why.startswith("not running")
    assert daemon_state(None, T0, alive=False) == (
        False, "not running (no heartbeat: the daemon has not run here yet)")


# --------------------------------------------------------------------------- systemd unit


def test_unit_file_runs_this_interpreter_and_restarts_only_on_failure() -> None:
    text = unit_text("/opt/mail bot/.venv/bin/python", Path("/home/o/100%/config.toml"))
    exec_line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert exec_line == ('ExecStart="/opt/mail bot/.venv/bin/python" -m mailbot --config '
                         '/home/o/100%%/config.toml run')
    assert "Restart=on-failure" in text
    assert "RestartPreventExitStatus=78" in text
    assert "StandardError=journal" in text
    assert "WantedBy=default.target" in text


def test_default_unit_path_follows_xdg() -> None:
    assert default_unit_path({"HOME": "/home/o"}) == Path(
        "/home/o/.config/systemd/user/mailbot.service")
    assert default_unit_path({"HOME": "/home/o", "XDG_CONFIG_HOME": "/x"}) == Path(
        "/x/systemd/user/mailbot.service")


def _config(tmp: Path) -> Path:
    p = tmp / "config.toml"
    p.write_text(CONFIG)
    return p


def test_install_service_writes_once_and_never_clobbers(tmp_path: Path) -> None:
    config = _config(tmp_path)
    unit = tmp_path / "units" / "mailbot.service"
    r = cli(config, "install-service", "--path", str(unit), timeout=60)
    assert r.returncode == 0, r.stderr
    text = unit.read_text()
    assert f"--config {config.resolve()} run" in text
    assert "systemctl --user daemon-reload && systemctl --user enable --now mailbot" in r.stdout
    assert "loginctl enable-linger" in r.stdout
    # the same again: fine, unchanged
    r = cli(config, "install-service", "--path", str(unit), timeout=60)
    assert r.returncode == 0 and "up to date" in r.stdout
    # a different unit is kept unless --force
    unit.write_text("[Service]\nExecStart=/bin/true\n")
    r = cli(config, "install-service", "--path", str(unit), timeout=60)
    assert r.returncode == 1 and "--force" in r.stderr
    assert unit.read_text() == "[Service]\nExecStart=/bin/true\n"
    r = cli(config, "install-service", "--path", str(unit), "--force", timeout=60)
    assert r.returncode == 0, r.stderr
    assert unit.read_text() == text


def test_install_service_refuses_a_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[owner]\nname = 1\n")
    unit = tmp_path / "mailbot.service"
    r = cli(config, "install-service", "--path", str(unit), timeout=60)
    assert r.returncode == 78
    assert not unit.exists()


def test_status_without_a_daemon_or_database(tmp_path: Path) -> None:
    config = _config(tmp_path)
    r = cli(config, "status", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "not running" in r.stdout and "last sync:     never" in r.stdout
    r = cli(config, "status", "--json", timeout=60)
    rep = json.loads(r.stdout)
    assert rep["running"] is False and rep["database_bytes"] is None


def test_status_sees_a_dead_pid_in_the_heartbeat(tmp_path: Path) -> None:
    config = _config(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    h = Health(pid=2 ** 22 + 17, version="0.1.0", started=datetime.now(UTC))
    h.state = "watching"
    h.note_error("the IMAP server refused the login", datetime.now(UTC))
    write_heartbeat(data / "heartbeat.json", h.to_dict(datetime.now(UTC)))
    assert not os.path.exists(f"/proc/{2 ** 22 + 17}")
    rep = json.loads(cli(config, "status", "--json", timeout=60).stdout)
    assert rep["running"] is False and "gone" in rep["daemon"]
    assert [e["message"] for e in rep["errors_24h"]] == ["the IMAP server refused the login"]


def test_install_service_warns_that_the_service_cannot_see_a_password_env(
        tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    text = CONFIG.replace('[imap]\nhost = "127.0.0.1"\n',
                          '[imap]\nhost = "127.0.0.1"\npassword_env = "SHOP_MAIL_PASSWORD"\n')
    assert text != CONFIG
    config.write_text(text)
    unit = tmp_path / "mailbot.service"
    r = cli(config, "install-service", "--path", str(unit), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "$SHOP_MAIL_PASSWORD, which the service does not see" in r.stderr
    assert "SHOP_MAIL_PASSWORD=... in ~/.config/mailbot/env" in r.stderr
    assert "EnvironmentFile=-%h/.config/mailbot/env" in unit.read_text()
    # a password kept elsewhere needs no such note
    r = cli(_config(tmp_path), "install-service", "--path", str(tmp_path / "u2"), timeout=60)
    assert r.returncode == 0 and "does not see" not in r.stderr


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "mailbot", "demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err
