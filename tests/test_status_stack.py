"""`mailbot status` on a real daemon, and the owner's alert when the login keeps failing."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path
from typing import Any

import pytest

from .helpers import cli, daemon_log, start_daemon, stop_daemon, wait_for, write_config

pytestmark = pytest.mark.stack


def _status(config: Path) -> dict[str, Any]:
    r = cli(config, "status", "--json", timeout=30)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def _alerts(stack: Any, owner: str) -> list[str]:
    """Subjects of mailbot's notices in the owner's inbox."""
    out = []
    for raw in stack.fetch_all(owner, "INBOX"):
        m = email.message_from_bytes(raw, policy=email.policy.default)
        if m["X-Mailbot"] == "notice":
            out.append(str(m["Subject"]))
    return out


def test_status_of_a_running_then_stopped_daemon(mail_stack: Any, tmp_path: Path) -> None:
    owner = mail_stack.new_user("owner")
    config = write_config(tmp_path, mail_stack, owner)
    proc = start_daemon(config)
    try:
        wait_for(lambda: (s := _status(config))["running"] and "INBOX" in s["last_sync"],
                 15, "status to show a running daemon with a sync")
        r = cli(config, "status", timeout=30)
        assert r.returncode == 0, r.stderr
        assert "daemon:        running (pid" in r.stdout
        assert "INBOX:" in r.stdout and " s ago)" in r.stdout
        assert (tmp_path / "data" / "heartbeat.json").exists()
    finally:
        stop_daemon(proc)
    r = cli(config, "status", timeout=30)
    assert "not running" in r.stdout, r.stdout
    assert "INBOX:" in r.stdout  # what it did is still shown
    assert _status(config)["running"] is False


def test_a_refused_imap_login_is_told_once_and_its_recovery_once(
        mail_stack: Any, tmp_path: Path) -> None:
    owner = mail_stack.new_user("owner")
    config = write_config(tmp_path, mail_stack, owner, extra="reconnect_max_seconds = 1")
    good = config.read_text()
    right = f'password = "{mail_stack.password}"'
    assert good.count(right) == 2  # IMAP first, then SMTP
    config.write_text(good.replace(right, 'password = "wrong"', 1))
    proc = start_daemon(config)
    try:
        wait_for(lambda: len(_alerts(mail_stack, owner)) >= 1, 20, "the login alert")
        # it keeps failing for several more logins: still one email
        wait_for(lambda: daemon_log(config).count("refused the login") >= 5, 20,
                 "more refused logins")
        status = _status(config)
        assert status["running"] is True
        assert status["alerts"] == ["login"]
        assert any("refused the login" in e["message"] for e in status["errors_24h"])
    finally:
        stop_daemon(proc)
    subjects = _alerts(mail_stack, owner)
    assert subjects == ["mailbot: I cannot log in to your mailbox"], subjects
    # the password is fixed: one email saying so
    config.write_text(good)
    r = cli(config, "run", "--once", timeout=60)
    assert r.returncode == 0, r.stderr
    subjects = _alerts(mail_stack, owner)
    assert subjects.count("mailbot: I can log in to your mailbox again") == 1, subjects
    assert len(subjects) == 2, subjects


def test_cron_runs_with_a_refused_login_add_up_to_one_alert(mail_stack: Any,
                                                            tmp_path: Path) -> None:
    """`run --once` from cron: each run is a new process; the third refusal tells the owner."""
    owner = mail_stack.new_user("owner")
    config = write_config(tmp_path, mail_stack, owner)
    good = config.read_text()
    config.write_text(good.replace(f'password = "{mail_stack.password}"',
                                   'password = "wrong"', 1))
    for _ in range(2):
        assert cli(config, "run", "--once", timeout=60).returncode == 2
    assert _alerts(mail_stack, owner) == []
    for _ in range(2):
        assert cli(config, "run", "--once", timeout=60).returncode == 2
    assert _alerts(mail_stack, owner) == ["mailbot: I cannot log in to your mailbox"]
    assert _status(config)["alerts"] == ["login"]
    config.write_text(good)
    r = cli(config, "run", "--once", timeout=60)
    assert r.returncode == 0, r.stderr
    assert _alerts(mail_stack, owner) == ["mailbot: I cannot log in to your mailbox",
                                          "mailbot: I can log in to your mailbox again"]
    assert _status(config)["alerts"] == []
