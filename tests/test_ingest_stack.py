"""Ingestion against the real private Dovecot + SMTP stack: exact counts, no loss, no duplicates."""

from __future__ import annotations

import json
import random
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailbot.config import load_settings
from mailbot.daemon import identity_of
from mailbot.imap import ImapSession
from mailbot.ingest import FolderSync
from mailbot.store import Store, load_database

from . import mailgen
from .helpers import (
    cli,
    customers,
    daemon_log,
    start_daemon,
    stop_daemon,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.stack


def _fill(stack: Any, owner: str, box: mailgen.Mailbox) -> None:
    for raw, when in box.inbox:
        stack.append(owner, "INBOX", raw, msg_time=when)
    for raw, when in box.sent:
        stack.append(owner, "Sent", raw, flags=("\\Seen",), msg_time=when)


def _counts(config: Path) -> dict[str, int]:
    return {a: row["touchpoints"] for a, row in customers(config).items()}


def test_live_mail_becomes_touchpoints_and_the_rest_does_not(mail_stack: Any, tmp_path: Path
                                                            ) -> None:
    owner = mail_stack.add_user("owner-live")
    config = write_config(tmp_path, mail_stack, owner)
    proc = start_daemon(config)
    try:
        wait_for(lambda: "Sent" in daemon_log(config) or (tmp_path / "data" / "mailbot.json")
                 .exists(), 30, "the daemon's first sync")
        time.sleep(0.5)
        ana = "ana@customer.example"
        mail_stack.deliver(mailgen.message(f"Ana Lima <{ana}>", owner, "Spring order",
                                           "Hello! Do you have the blue napkins?"), ana, [owner])
        mail_stack.deliver(mailgen.newsletter(owner), "news@weekly.example", [owner])
        mail_stack.deliver(mailgen.auto_reply(owner), "ben@carter.example", [owner])
        mail_stack.deliver(mailgen.bounce(owner), "", [owner])
        mail_stack.deliver(mailgen.no_reply(owner), "no-reply@shop.example", [owner])
        mail_stack.deliver(mailgen.message(owner, owner, "note to self", "remember milk"),
                           owner, [owner])
        mail_stack.deliver(mailgen.message("Carl <carl@staff.example>", owner, "Lunch?"),
                           "carl@staff.example", [owner])
        others = {"news@weekly.example", "ben@carter.example", "mailer-daemon@mx.example",
                  "no-reply@shop.example", owner, "carl@staff.example"}
        wait_for(lambda: ana in customers(config) and others <= set(_seen(config)), 60,
                 "all seven messages to be classified")
        seen = _seen(config)
        assert {a: seen[a]["category"] for a in others} == {
            "news@weekly.example": "bulk", "ben@carter.example": "automated",
            "mailer-daemon@mx.example": "bounce", "no-reply@shop.example": "automated",
            owner: "internal", "carl@staff.example": "internal"}
        rows = customers(config)
        assert set(rows) == {ana}, rows
        assert rows[ana]["touchpoints"] == 1
        assert rows[ana]["needs_reply"] is True
        assert rows[ana]["name"] == "Ana Lima"
        timeline = json.loads(cli(config, "customer", ana, "--json").stdout)["timeline"]
        assert "blue napkins" in timeline[0]["snippet"]
        seconds = stop_daemon(proc)
        assert seconds < 5
    finally:
        if proc.poll() is None:
            proc.kill()


def _seen(config: Path) -> dict[str, Any]:
    """Non-customer decisions stored so far (read straight from the committed file)."""
    db = load_database(config.parent / "data" / "mailbot.json").data
    return {d["address"]: d for d in db.get("decisions", {}).values()}


def test_generated_mailbox_backfills_to_exact_customers(mail_stack: Any, tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-gen")
    box = mailgen.generate(owner, customers=40, messages=300, seed=3)
    _fill(mail_stack, owner, box)
    config = write_config(tmp_path, mail_stack, owner, batch_size=50)
    r = cli(config, "run", "--once")
    assert r.returncode == 0, r.stderr
    assert _counts(config) == box.touchpoints
    # a second pass changes nothing
    r = cli(config, "run", "--once")
    assert r.returncode == 0, r.stderr
    assert _counts(config) == box.touchpoints
    # non-customer mail is explained, not stored as touchpoints
    seen = _seen(config)
    assert seen["news@weekly.example"]["category"] == "bulk"
    assert seen["ben@carter.example"]["category"] == "automated"
    assert seen["no-reply@shop.example"]["category"] == "automated"


def test_history_days_limits_the_backfill(mail_stack: Any, tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-hist")
    now = datetime.now(UTC)
    old = now - timedelta(days=100)
    mail_stack.append(owner, "INBOX", mailgen.message("a@x.example", owner, "old", date=old),
                      msg_time=old)
    mail_stack.append(owner, "INBOX", mailgen.message("b@x.example", owner, "new", date=now),
                      msg_time=now)
    config = write_config(tmp_path, mail_stack, owner, history_days=30)
    assert cli(config, "run", "--once").returncode == 0
    assert set(customers(config)) == {"b@x.example"}


def _sync_folder(config: Path, folder: str, stop_after: int | None = None) -> int:
    """Run one FolderSync in-process; stop after ``stop_after`` batches. Returns batches run."""
    settings = load_settings(config)
    batches = 0

    def progress(_n: int) -> None:
        nonlocal batches
        batches += 1

    def should_stop() -> bool:
        return stop_after is not None and batches >= stop_after

    session = ImapSession(settings.imap)
    session.connect()
    try:
        with Store(settings.data.dir) as store:
            FolderSync(session, store, folder, identity_of(settings),
                       history_days=settings.ingest.history_days,
                       batch_size=settings.ingest.batch_size).sync(progress, should_stop)
    finally:
        session.close()
    return batches


def test_interrupted_backfill_resumes_without_loss_or_duplicates(mail_stack: Any,
                                                                 tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-int")
    box = mailgen.generate(owner, customers=25, messages=200, seed=5)
    box.sent.clear()
    _fill(mail_stack, owner, box)
    config = write_config(tmp_path, mail_stack, owner, batch_size=20)
    ran = _sync_folder(config, "INBOX", stop_after=3)
    assert ran == 3
    partial = sum(_counts(config).values())
    assert partial > 0
    _sync_folder(config, "INBOX")
    full = _counts(config)
    # and a clean one-shot sync of a fresh database gives the same answer
    fresh = write_config(tmp_path / "fresh", mail_stack, owner, batch_size=500)
    _sync_folder(fresh, "INBOX")
    assert full == _counts(fresh)
    assert sum(full.values()) > partial


def test_kill_9_during_backfill_leaves_a_loadable_exact_database(mail_stack: Any,
                                                                 tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-kill")
    box = mailgen.generate(owner, customers=60, messages=600, seed=9)
    _fill(mail_stack, owner, box)
    config = write_config(tmp_path, mail_stack, owner, batch_size=10)
    db = tmp_path / "data" / "mailbot.json"
    rng = random.Random(42)
    for _attempt in range(3):
        proc = start_daemon(config)
        try:
            wait_for(lambda: db.exists(), 30, "the first commit")
            time.sleep(rng.uniform(0.05, 0.6))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        # whatever instant it died at, the snapshot and its journal load
        load_database(db)
    r = cli(config, "run", "--once")
    assert r.returncode == 0, r.stderr
    assert _counts(config) == box.touchpoints
    # temp files of the killed writers were cleared by the next writer
    assert list(db.parent.glob(".mailbot.json.*.tmp")) == []


def test_dovecot_restart_while_idling_recovers_and_ingests(mail_stack: Any,
                                                           tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-restart")
    config = write_config(tmp_path, mail_stack, owner)
    proc = start_daemon(config)
    try:
        wait_for(lambda: (tmp_path / "data" / "mailbot.json").exists(), 30, "first sync")
        time.sleep(1.0)
        mail_stack.stop_dovecot()
        time.sleep(1.0)
        mail_stack.start_dovecot()
        # delivered while the daemon is still backing off from the outage
        for i in range(3):
            addr = f"outage{i}@customer.example"
            mail_stack.deliver(mailgen.message(addr, owner, f"during outage {i}"), addr, [owner])
        wait_for(lambda: len(customers(config)) == 3, 60, "mail delivered around the outage")
        assert all(r["touchpoints"] == 1 for r in customers(config).values())
        assert "reconnecting" in daemon_log(config)
        assert stop_daemon(proc) < 5
    finally:
        if proc.poll() is None:
            proc.kill()


def test_uidvalidity_change_resyncs_by_message_id(mail_stack: Any, tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-uidv")
    box = mailgen.generate(owner, customers=10, messages=60, seed=11)
    _fill(mail_stack, owner, box)
    config = write_config(tmp_path, mail_stack, owner)
    assert cli(config, "run", "--once").returncode == 0
    assert _counts(config) == box.touchpoints
    mail_stack.change_uidvalidity(owner, "INBOX")
    late = "late@customer.example"
    mail_stack.deliver(mailgen.message(late, owner, "after the change"), late, [owner])
    r = cli(config, "run", "--once")
    assert r.returncode == 0, r.stderr
    assert "UIDVALIDITY changed" in r.stderr
    expected = dict(box.touchpoints)
    expected[late] = 1
    assert _counts(config) == expected


def test_check_reports_a_wrong_password_in_one_sentence(mail_stack: Any, tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-check")
    config = write_config(tmp_path, mail_stack, owner, password="wrong")
    r = cli(config, "check")
    assert r.returncode == 1
    assert "Traceback" not in r.stdout + r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("FAIL  IMAP login"))
    assert "wrong username or password" in line


def test_check_reports_an_untrusted_certificate(mail_stack: Any, tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-cert")
    config = write_config(tmp_path, mail_stack, owner, security="tls", ca_file="")
    r = cli(config, "check")
    assert r.returncode == 1
    assert "Traceback" not in r.stdout + r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("FAIL  IMAP TLS"))
    assert "not trusted" in line and "ca_file" in line


def test_check_passes_with_tls_and_the_right_ca(mail_stack: Any, tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-ok")
    config = write_config(tmp_path, mail_stack, owner, security="tls")
    r = cli(config, "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok    IMAP folders" in r.stdout and "Sent is 'Sent'" in r.stdout
    assert "ok    SMTP login" in r.stdout
