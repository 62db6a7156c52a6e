"""The owner's alerts with an injected clock and no mail server.

The daemon runs with a fake IMAP session (its login refused, or the server unreachable)
and a fake SMTP sender, so `run --once` from cron and a digest refused by SMTP can be
played through days of clock time in milliseconds.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mailbot import outbox
from mailbot.cli import format_status, status_report
from mailbot.config import Settings, load_settings
from mailbot.daemon import Daemon
from mailbot.errors import AuthError, MailServerError
from mailbot.health import (
    CONNECTION,
    DIGEST_SEND,
    LOGIN,
    NO_CONNECTION,
    STREAK_GAP,
    TROUBLE_KEY,
    Alerts,
    ConnectionTrouble,
    DigestDelivery,
    alert_message,
    digest_delivery,
    digest_send_detail,
    untold_alerts,
)
from mailbot.smtp import Outcome, SendResult
from mailbot.store import Store

from .helpers import MINIMAL_CONFIG

T0 = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)
OWNER = "olivia@linen.example"


# --------------------------------------------------------------------------- pure parts


def test_refused_logins_add_up_across_saved_state_and_reset_on_success() -> None:
    t = ConnectionTrouble()
    for i in range(3):  # three cron runs: each loads the state, fails, saves it
        t = ConnectionTrouble.from_dict(t.to_dict())
        t.failed(T0 + timedelta(minutes=5 * i), auth=True)
    assert t.auth_failures == 3
    assert t.problems(T0 + timedelta(minutes=10), auth=True, login_open=False) == [LOGIN]
    # a network failure neither counts as a refused login nor resets the count
    t.failed(T0 + timedelta(minutes=15), auth=False)
    assert t.auth_failures == 3
    t.connected()
    assert t.to_dict() == {"auth_failures": 0, "failing_since": None, "last_failure": None}
    assert ConnectionTrouble.from_dict({"auth_failures": "x", "failing_since": "nope"}) == \
        ConnectionTrouble()


def test_an_hour_without_connection_counts_from_the_first_failure_of_the_outage() -> None:
    t = ConnectionTrouble()
    t.failed(T0, auth=False)
    assert t.problems(T0 + timedelta(minutes=59), auth=False, login_open=False) == []
    t.failed(T0 + timedelta(minutes=59), auth=False)
    t.failed(T0 + NO_CONNECTION, auth=False)
    assert t.without_connection(T0 + NO_CONNECTION) == NO_CONNECTION
    assert t.problems(T0 + NO_CONNECTION, auth=False, login_open=False) == [CONNECTION]
    # an open login alert covers it: no second email about the same outage
    assert t.problems(T0 + NO_CONNECTION, auth=False, login_open=True) == []


def test_failures_far_apart_are_not_one_outage() -> None:
    """The machine slept overnight: the first failure after it is not 'an hour without'."""
    t = ConnectionTrouble()
    t.failed(T0, auth=False)
    later = T0 + STREAK_GAP + timedelta(minutes=1)
    t.failed(later, auth=False)
    assert t.failing_since == later
    assert t.problems(later, auth=False, login_open=False) == []


def test_a_new_occurrence_is_told_at_once_the_same_one_at_most_daily() -> None:
    a = Alerts()
    assert a.raise_(DIGEST_SEND, T0, "2026-11-24")
    assert not a.raise_(DIGEST_SEND, T0 + timedelta(hours=3), "2026-11-24")
    # the next morning's list fails too, a few seconds "earlier" in the day: told
    assert a.raise_(DIGEST_SEND, T0 + timedelta(hours=23, minutes=59), "2026-11-25")
    assert not a.raise_(DIGEST_SEND, T0 + timedelta(hours=24), "2026-11-25")
    assert a.active() == [DIGEST_SEND]


def _item(kind: str, state: str, created: datetime, *, ref: str = "", detail: str = "",
          attempts: int = 1) -> dict[str, Any]:
    return {"message_id": f"{kind}.{created.isoformat()}", "kind": kind, "ref": ref,
            "state": state, "created": created.isoformat(), "detail": detail,
            "attempts": attempts, "rcpts": [OWNER]}


def test_digest_delivery_verdicts() -> None:
    day = "2026-11-24"
    sent = _item("digest", outbox.SENT, T0, ref=day)
    refused = _item("digest", outbox.FAILED, T0, ref=day, detail="554 5.7.1 spam")
    queued = _item("digest", outbox.QUEUED, T0, ref=day, detail="421 try later", attempts=3)
    unknown = _item("digest", outbox.UNKNOWN, T0, ref=day, detail="connection failed")
    later = T0 + timedelta(minutes=10)
    assert digest_delivery([], later) == (None, None)
    assert digest_delivery([_item("draft", outbox.FAILED, T0)], later) == (None, None)
    assert digest_delivery([sent], later)[0] is False
    verdict, d = digest_delivery([refused], later)
    assert verdict is True and d is not None
    assert (d.day, d.state, d.detail, d.to) == (day, outbox.FAILED, "554 5.7.1 spam", OWNER)
    # still retrying or unknown: only a problem once it is late
    assert digest_delivery([queued], later)[0] is None
    assert digest_delivery([queued], T0 + timedelta(hours=2))[0] is True
    assert digest_delivery([unknown], later)[0] is None
    assert digest_delivery([unknown], T0 + timedelta(hours=3))[0] is True
    # the latest digest decides; an old refusal is not told again and again
    tomorrow = _item("digest", outbox.SENT, T0 + timedelta(days=1), ref="2026-11-25")
    assert digest_delivery([refused, tomorrow], T0 + timedelta(days=1))[0] is False
    assert digest_delivery([refused], T0 + timedelta(days=1, minutes=1))[0] is None


def test_the_digest_alert_says_what_the_server_answered_and_what_to_check() -> None:
    d = DigestDelivery(day="2026-11-24", state=outbox.FAILED,
                       detail="550 5.1.1 <o@x.example>: Recipient address rejected",
                       attempts=1, to="o@x.example", created=T0)
    subject, body = alert_message(DIGEST_SEND, detail=digest_send_detail(d, T0))
    assert subject == "your morning list did not reach you"
    assert "2026-11-24" in body and "o@x.example" in body
    assert "550 5.1.1 <o@x.example>: Recipient address rejected" in body
    assert "[digest] to" in body and "mailbot status" in body
    late = DigestDelivery(day="2026-11-24", state=outbox.QUEUED, detail="421 busy",
                          attempts=4, to="o@x.example", created=T0)
    text = digest_send_detail(late, T0 + timedelta(hours=3))
    assert "4 tries in 3 hours" in text and "421 busy" in text and "keep trying" in text
    assert "again" in alert_message(DIGEST_SEND, recovered=True)[0]


def test_untold_alerts_are_the_open_problems_whose_email_did_not_go() -> None:
    items = [_item("alert", outbox.FAILED, T0, ref="login:problem", detail="554 no"),
             _item("alert", outbox.SENT, T0, ref="connection:problem"),
             _item("alert", outbox.QUEUED, T0, ref="digest:ok")]
    assert untold_alerts(items, [LOGIN, CONNECTION]) == {LOGIN: "failed: 554 no"}
    assert untold_alerts(items, [CONNECTION]) == {}


# --------------------------------------------------------------------------- the daemon


class FakeSession:
    """An IMAP session whose connection always fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def connect(self) -> None:
        raise self.error

    def close(self) -> None:
        pass


class FakeSmtp:
    """Records what is sent; ``answer`` decides each outcome from the message."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self.refused: list[EmailMessage] = []
        self.answer: Callable[[EmailMessage], SendResult] = \
            lambda _m: SendResult(Outcome.SENT, "250 ok", 250)

    def __call__(self, raw: bytes, mail_from: str, rcpts: Sequence[str],
                 before_data: Callable[[], None]) -> SendResult:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        before_data()
        result = self.answer(msg)
        (self.sent if result.outcome is Outcome.SENT else self.refused).append(msg)
        return result

    def subjects(self, kind: str = "notice") -> list[str]:
        return [str(m["Subject"]) for m in self.sent if m["X-Mailbot"] == kind]


class FakeDaemon(Daemon):
    def __init__(self, settings: Settings, store: Store, clock: Callable[[], datetime],
                 smtp: FakeSmtp, imap_error: Exception | None = None) -> None:
        super().__init__(settings, store, clock=clock)
        self.session: Any = FakeSession(imap_error or MailServerError("no route to host"))
        self.smtp = smtp

    def _send(self, raw: bytes, mail_from: str, rcpts: Any,
              before_data: Callable[[], None]) -> SendResult:
        return self.smtp(raw, mail_from, rcpts, before_data)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    p = tmp_path / "config.toml"
    p.write_text(MINIMAL_CONFIG)
    return load_settings(p, env={})


def _cron_run(settings: Settings, smtp: FakeSmtp, now: datetime, error: Exception) -> int:
    """One `mailbot run --once` from cron: a new process, the same database."""
    with Store(settings.data.dir) as store:
        return FakeDaemon(settings, store, lambda: now, smtp, error).run(once=True)


def test_cron_runs_with_a_refused_login_tell_the_owner_once_then_the_recovery(
        settings: Settings) -> None:
    smtp = FakeSmtp()
    refused = AuthError("the IMAP server refused the login for 'olivia'")
    for i in range(2):
        assert _cron_run(settings, smtp, T0 + timedelta(minutes=5 * i), refused) == 2
    assert smtp.subjects() == []
    assert _cron_run(settings, smtp, T0 + timedelta(minutes=10), refused) == 2
    assert smtp.subjects() == ["mailbot: I cannot log in to your mailbox"]
    body = smtp.sent[0].get_body(preferencelist=("plain",))
    assert body is not None and "refused the login for 'olivia'" in body.get_content()
    for i in range(3, 20):  # still refused for more than an hour: no more emails that day
        assert _cron_run(settings, smtp, T0 + timedelta(minutes=5 * i), refused) == 2
    assert len(smtp.subjects()) == 1
    # the next day it is still refused: one reminder
    assert _cron_run(settings, smtp, T0 + timedelta(days=1, minutes=10), refused) == 2
    assert len(smtp.subjects()) == 2
    # fixed: the next run connects, and the owner hears so once
    with Store(settings.data.dir) as store:
        d = FakeDaemon(settings, store, lambda: T0 + timedelta(days=1, hours=1), smtp)
        d._connected()
        store.commit()
        assert d.alerts.active() == []
        record = store.record("kv", TROUBLE_KEY)
        assert record is not None and record["value"]["auth_failures"] == 0
    assert smtp.subjects()[2:] == ["mailbot: I can log in to your mailbox again"]


def test_cron_runs_without_a_connection_tell_the_owner_after_an_hour(
        settings: Settings) -> None:
    smtp = FakeSmtp()
    down = MailServerError("cannot connect to the IMAP server 127.0.0.1:993")
    for minutes in (0, 15, 30, 45):
        assert _cron_run(settings, smtp, T0 + timedelta(minutes=minutes), down) == 1
    assert smtp.subjects() == []
    assert _cron_run(settings, smtp, T0 + timedelta(minutes=60), down) == 1
    assert smtp.subjects() == ["mailbot: I have not reached your mailbox for an hour"]
    body = smtp.sent[0].get_body(preferencelist=("plain",))
    assert body is not None and "since 2026-11-24 06:30 UTC" in body.get_content()
    assert _cron_run(settings, smtp, T0 + timedelta(minutes=75), down) == 1
    assert len(smtp.subjects()) == 1


def _queue_digest(store: Store, day: date, now: datetime) -> str:
    msg = EmailMessage()
    msg["Subject"] = f"people to write to today ({day})"
    msg["From"] = msg["To"] = OWNER
    msg["Message-ID"] = f"<mailbot.digest.{day}@linen.example>"
    msg["X-Mailbot"] = "digest"
    msg.set_content("the list")
    mid = outbox.enqueue(store, msg, kind="digest", mail_from=OWNER, rcpts=[OWNER], now=now,
                         owner_only=True, ref=day.isoformat())
    store.commit()
    return mid


def _refuse_digests(msg: EmailMessage) -> SendResult:
    if msg["X-Mailbot"] == "digest":
        return SendResult(Outcome.PERMANENT, "554 5.7.1 message refused as spam", 554)
    return SendResult(Outcome.SENT, "250 ok", 250)


def test_a_refused_digest_is_told_once_and_a_later_digest_clears_it(
        settings: Settings) -> None:
    smtp = FakeSmtp()
    smtp.answer = _refuse_digests
    with Store(settings.data.dir) as store:
        now = T0
        d = FakeDaemon(settings, store, lambda: now, smtp)
        _queue_digest(store, date(2026, 11, 24), now)
        d._flush_without_imap()
        assert [str(m["X-Mailbot"]) for m in smtp.refused] == ["digest"]
        assert smtp.subjects() == ["mailbot: your morning list did not reach you"]
        body = smtp.sent[0].get_body(preferencelist=("plain",))
        assert body is not None and "554 5.7.1 message refused as spam" in body.get_content()
        # later checks the same day, and a restart, say nothing more
        now = T0 + timedelta(hours=1)
        d._flush_without_imap()
        d = FakeDaemon(settings, store, lambda: now, smtp)
        d._flush_without_imap()
        assert len(smtp.subjects()) == 1
        assert d.alerts.active() == [DIGEST_SEND]
        # the next morning's list goes out: one email saying so
        now = T0 + timedelta(days=1)
        smtp.answer = lambda _m: SendResult(Outcome.SENT, "250 ok", 250)
        _queue_digest(store, date(2026, 11, 25), now)
        d._flush_without_imap()
        assert smtp.subjects("digest") == ["people to write to today (2026-11-25)"]
        assert smtp.subjects()[1:] == ["mailbot: your morning list reaches you again"]
        assert d.alerts.active() == []


def test_a_digest_stuck_in_retries_is_told_when_late(settings: Settings) -> None:
    smtp = FakeSmtp()
    smtp.answer = lambda m: (SendResult(Outcome.TEMPORARY, "421 4.3.0 busy", 421)
                             if m["X-Mailbot"] == "digest" else
                             SendResult(Outcome.SENT, "250 ok", 250))
    with Store(settings.data.dir) as store:
        now = T0
        d = FakeDaemon(settings, store, lambda: now, smtp)
        _queue_digest(store, date(2026, 11, 24), now)
        for minutes in (0, 30, 60, 90):  # cron every half hour, the retry is due each time
            now = T0 + timedelta(minutes=minutes)
            d._flush_without_imap()
        assert smtp.subjects() == []
        now = T0 + timedelta(hours=2)
        d._flush_without_imap()
        assert smtp.subjects() == ["mailbot: your morning list did not reach you"]
        body = smtp.sent[0].get_body(preferencelist=("plain",))
        assert body is not None and "still not gone out" in body.get_content()


def test_when_smtp_refuses_everything_status_shows_the_untold_problem(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    smtp = FakeSmtp()
    smtp.answer = lambda _m: SendResult(
        Outcome.PERMANENT, "550 5.1.1 <olivia@linen.example>: Recipient address rejected", 550)
    with Store(settings.data.dir) as store:
        d = FakeDaemon(settings, store, lambda: T0, smtp)
        _queue_digest(store, date(2026, 11, 24), T0)
        d._flush_without_imap()
    assert smtp.sent == [] and len(smtp.refused) == 2  # the digest, then the alert about it
    assert any("could not email the owner" in r.getMessage() and r.levelname == "ERROR"
               for r in caplog.records)
    rep = status_report(settings, T0 + timedelta(minutes=1))
    assert rep["alerts"] == [DIGEST_SEND]
    assert rep["alerts_not_emailed"] == {
        DIGEST_SEND: "failed: 550 5.1.1 <olivia@linen.example>: Recipient address rejected"}
    assert rep["last_digest_sent"] is False
    text = format_status(rep, T0 + timedelta(minutes=1))
    assert "digest_send (the owner was NOT told; alert email failed: 550 5.1.1" in text
    assert "digest sent:   no (2026-11-24, failed: 550 5.1.1" in text
    assert "the owner was told" not in text
