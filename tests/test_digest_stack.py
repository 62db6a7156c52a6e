"""The morning digest end to end: real Dovecot, real SMTP, the outbox's faults."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mailbot.demo import demo_messages
from mailbot.parse import parse_headers

from .helpers import cli, write_config

pytestmark = pytest.mark.stack

BERLIN = ZoneInfo("Europe/Berlin")


def _fill_with_demo(stack: Any, owner: str) -> None:
    """The bundled demo's history, rewritten to this owner: theirs in INBOX, ours in Sent."""
    for raw in demo_messages():
        raw = raw.replace(b"olivia@linen.example", owner.encode())
        msg = parse_headers(raw)
        folder = "Sent" if msg.sender and msg.sender.address == owner else "INBOX"
        stack.append(owner, folder, raw, msg_time=msg.date)


def _config(tmp: Path, stack: Any, owner: str, *, at: datetime | None = None,
            grace: int = 180) -> Path:
    local = (at or datetime.now(UTC) - timedelta(minutes=2)).astimezone(BERLIN)
    extra = f"""
[digest]
time = "{local:%H:%M}"
days = "*"
size = 5
grace_minutes = {grace}
"""
    return write_config(tmp, stack, owner, extra=extra)


def _owner_mail(stack: Any, owner: str) -> list[EmailMessage]:
    out = []
    for raw in stack.fetch_all(owner, "INBOX"):
        m = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(m, EmailMessage)
        out.append(m)
    return out


def _digests(msgs: list[EmailMessage]) -> list[EmailMessage]:
    return [m for m in msgs if m["X-Mailbot"] == "digest"]


def _drafts(msgs: list[EmailMessage]) -> list[EmailMessage]:
    return [m for m in msgs if m["X-Mailbot"] == "draft"]


def test_the_digest_arrives_once_with_threaded_drafts(mail_stack: Any, tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-digest")
    _fill_with_demo(mail_stack, owner)
    config = _config(tmp_path, mail_stack, owner)
    r = cli(config, "run", "--once")
    assert r.returncode == 0, r.stderr
    msgs = _owner_mail(mail_stack, owner)
    digests, drafts = _digests(msgs), _drafts(msgs)
    assert len(digests) == 1, r.stderr
    digest = digests[0]
    assert digest["Auto-Submitted"] == "auto-generated"
    assert "people to write to today" in str(digest["Subject"])
    assert digest.get_body(preferencelist=("html",)) is not None
    assert 3 <= len(drafts) <= 5
    digest_id = str(digest["Message-ID"])
    assert all(str(d["In-Reply-To"]) == digest_id for d in drafts)
    assert len({str(d["Message-ID"]) for d in drafts}) == len(drafts)
    # the digest's own mail is not mistaken for customer mail on the next sync,
    # and a second run the same morning sends nothing more
    before = {a for a in _customers(config)}
    r = cli(config, "run", "--once")
    assert r.returncode == 0, r.stderr
    assert len(_digests(_owner_mail(mail_stack, owner))) == 1
    assert len(_drafts(_owner_mail(mail_stack, owner))) == len(drafts)
    assert {a for a in _customers(config)} == before


def _customers(config: Path) -> dict[str, Any]:
    import json

    r = cli(config, "customers", "--json")
    return {row["address"]: row for row in json.loads(r.stdout)}


def test_outside_the_grace_window_no_digest_is_sent(mail_stack: Any, tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-late")
    _fill_with_demo(mail_stack, owner)
    config = _config(tmp_path, mail_stack, owner,
                     at=datetime.now(UTC) - timedelta(minutes=90), grace=30)
    r = cli(config, "run", "--once")
    assert r.returncode == 0, r.stderr
    assert _digests(_owner_mail(mail_stack, owner)) == []


def test_smtp_421_then_success_delivers_one_copy(mail_stack: Any, tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-421")
    _fill_with_demo(mail_stack, owner)
    config = _config(tmp_path, mail_stack, owner)
    mail_stack.smtp_faults(code=421, count=1)
    r = cli(config, "run", "--once")
    assert r.returncode == 0, r.stderr
    assert "retrying" in r.stderr
    # the failed digest is waiting for its retry; the drafts behind it went out
    assert _digests(_owner_mail(mail_stack, owner)) == []
    mail_stack.clear_smtp_faults()
    r = cli(config, "outbox", "--retry-now")
    assert r.returncode == 0, r.stderr
    assert len(_digests(_owner_mail(mail_stack, owner))) == 1
    digest_id = str(_digests(_owner_mail(mail_stack, owner))[0]["Message-ID"]).strip("<>")
    delivered = [e for e in mail_stack.smtp_log() if e.get("message_id", "").strip("<>")
                 == digest_id and e.get("fault") is None]
    assert len(delivered) == 1


def test_disconnect_after_the_final_dot_is_resolved_through_the_mailbox(
        mail_stack: Any, tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-drop")
    _fill_with_demo(mail_stack, owner)
    config = _config(tmp_path, mail_stack, owner)
    mail_stack.smtp_faults(drop_after_delivery=1)
    r = cli(config, "run", "--once")
    assert r.returncode == 0, r.stderr
    assert "unknown" in r.stderr
    mail_stack.clear_smtp_faults()
    r = cli(config, "outbox", "--retry-now")
    assert r.returncode == 0, r.stderr
    assert "found in the mailbox" in r.stdout
    assert len(_digests(_owner_mail(mail_stack, owner))) == 1


def _notices(msgs: list[EmailMessage]) -> list[str]:
    return [str(m["Subject"]) for m in msgs if m["X-Mailbot"] == "notice"]


def test_a_digest_refused_by_smtp_is_told_to_the_owner_once(mail_stack: Any,
                                                            tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-554")
    _fill_with_demo(mail_stack, owner)
    config = _config(tmp_path, mail_stack, owner)
    mail_stack.smtp_faults(code=554, count=1, text="5.7.1 message refused as spam")
    r = cli(config, "run", "--once")
    assert r.returncode == 0, r.stderr
    assert mail_stack.pending_smtp_faults() == []
    msgs = _owner_mail(mail_stack, owner)
    assert _digests(msgs) == [] and len(_drafts(msgs)) >= 3  # the digest was the one refused
    assert _notices(msgs) == ["mailbot: your morning list did not reach you"]
    alert = next(m for m in msgs if m["X-Mailbot"] == "notice")
    body = alert.get_body(preferencelist=("plain",))
    assert body is not None and "554 5.7.1 message refused as spam" in body.get_content()
    status = json.loads(cli(config, "status", "--json").stdout)
    assert status["alerts"] == ["digest_send"] and status["alerts_not_emailed"] == {}
    assert status["last_digest_sent"] is False
    # the next run the same morning tells nothing more
    r = cli(config, "run", "--once")
    assert r.returncode == 0, r.stderr
    assert len(_notices(_owner_mail(mail_stack, owner))) == 1


def test_when_smtp_refuses_everything_status_and_log_show_it(mail_stack: Any,
                                                             tmp_path: Path) -> None:
    owner = mail_stack.add_user("owner-550")
    _fill_with_demo(mail_stack, owner)
    config = _config(tmp_path, mail_stack, owner)
    mail_stack.smtp_faults(code=550, count=50, text="5.1.1 recipient address rejected")
    r = cli(config, "run", "--once")
    mail_stack.clear_smtp_faults()
    assert r.returncode == 0, r.stderr
    assert "could not email the owner" in r.stderr
    assert [m for m in _owner_mail(mail_stack, owner) if m["X-Mailbot"]] == []
    status = json.loads(cli(config, "status", "--json").stdout)
    assert status["alerts"] == ["digest_send"]
    assert "550 5.1.1 recipient address rejected" in status["alerts_not_emailed"]["digest_send"]
    text = cli(config, "status").stdout
    assert "digest_send (the owner was NOT told" in text and "digest sent:   no (" in text, text
