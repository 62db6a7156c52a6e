"""Reply-to-send under faults: a note to a customer leaves exactly once, or the owner is told.

Each test builds a Shop (tests.test_reply_stack): an owner mailbox with history, customers
with real mailboxes and today's drafts.  The owner replies to a draft; then SMTP fails in
the ways of issue 4 (421, a connection dropped after the final dot), or the daemon is
killed with SIGKILL between queueing a note and sending it, or at random points of a send
loop.  Every test ends with the customer holding exactly one copy, or, when the outcome
of a send is unknown, at most one copy, the note never resent, and the owner told.

The daemon tells the owner about an ``unknown`` note once it has been unknown for five
minutes (a constant in ``Daemon._tell_unknown_notes``, with no clock to inject into the
CLI).  The tests do not wait five minutes: with no mailbot process running they move the
outbox item's ``updated`` time six minutes back in the store, then run mailbot again.
"""

from __future__ import annotations

import email
import email.policy
import random
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest

from mailbot.store import Store

from .helpers import cli, daemon_log, start_daemon, stop_daemon, wait_for
from .test_reply_stack import NOTE, Shop, gmail_quote, plain

pytestmark = pytest.mark.stack

NOTE_PREFIX = "mailbot.note."


# --------------------------------------------------------------------------- helpers


def reply_sent_first(shop: Shop, to: EmailMessage, body: str) -> str:
    """The owner's reply, filed in Sent before it reaches the INBOX (as an IMAP-first
    client does), so a running daemon never sees it in the INBOX before it is in Sent."""
    m = EmailMessage()
    m["From"] = f"Olivia Owner <{shop.owner}>"
    m["To"] = str(to["From"])
    m["Subject"] = "Re: " + str(to["Subject"])
    m["Date"] = format_datetime(datetime.now(UTC))
    mid = make_msgid(domain="mail.example.test")
    m["Message-ID"] = mid
    m["In-Reply-To"] = str(to["Message-ID"])
    m["References"] = f"{to.get('References', '')} {to['Message-ID']}".strip()
    m.set_content(body)
    raw = bytes(m)
    shop.stack.append(shop.owner, "Sent", raw, flags=("\\Seen",))
    shop.stack.deliver(raw, shop.owner, [shop.owner])
    return mid


def data_dir(shop: Shop) -> Path:
    return shop.config.parent / "data"


def notes(shop: Shop) -> dict[str, dict[str, Any]]:
    """The outbox's notes by customer address (read-only, safe while a daemon runs)."""
    store = Store(data_dir(shop), readonly=True)
    out: dict[str, dict[str, Any]] = {}
    for item in store.records("outbox"):
        if item["kind"] == "note":
            assert item["rcpts"][0] not in out, f"two notes queued for {item['rcpts'][0]}"
            out[item["rcpts"][0]] = item
    return out


def records(shop: Shop, table: str) -> list[dict[str, Any]]:
    return list(Store(data_dir(shop), readonly=True).records(table))


def outbox_note_states(shop: Shop) -> list[str]:
    """The STATE column of the note rows that ``mailbot outbox`` prints."""
    r = cli(shop.config, "outbox")
    assert r.returncode == 0, r.stderr
    return re.findall(r"^\S+ \S+\s+note\s+(\S+)\s", r.stdout, re.MULTILINE)


def note_copies(shop: Shop, customer: str) -> list[EmailMessage]:
    """Notes (mailbot.note.* Message-IDs) in the customer's mailbox."""
    return [m for m in shop.customer_mail(customer)
            if str(m["Message-ID"]).strip("<>").startswith(NOTE_PREFIX)]


def deliveries(stack: Any, message_id: str) -> int:
    """How many times the SMTP server delivered MESSAGE_ID (dropped answers included)."""
    return sum(1 for e in stack.smtp_log()
               if (e.get("message_id") or "").strip().strip("<>") == message_id)


def in_folder(shop: Shop, folder: str, message_id: str) -> int:
    n = 0
    for raw in shop.stack.fetch_all(shop.owner, folder):
        m = email.message_from_bytes(raw, policy=email.policy.default)
        if str(m["Message-ID"]).strip().strip("<>") == message_id:
            n += 1
    return n


def set_undo(shop: Shop, seconds: int) -> None:
    text = shop.config.read_text(encoding="utf-8")
    assert "undo_seconds = 0" in text
    shop.config.write_text(text.replace("undo_seconds = 0", f"undo_seconds = {seconds}"),
                           encoding="utf-8")


def age_unknown_notes(shop: Shop, minutes: int = 6) -> list[str]:
    """Pretend MINUTES passed for every unknown note (no mailbot process may be running).

    Returns the Message-IDs of the unknown notes."""
    aged = []
    with Store(data_dir(shop)) as store:
        for item in store.records("outbox"):
            if item["kind"] == "note" and item["state"] == "unknown":
                when = datetime.fromisoformat(item["updated"]) - timedelta(minutes=minutes)
                item["updated"] = when.isoformat()
                store.put_record("outbox", item)
                aged.append(item["message_id"])
        store.commit()
    return aged


def unsure_notices(shop: Shop, note_id: str) -> list[EmailMessage]:
    """Notices to the owner about the note NOTE_ID whose delivery is unknown."""
    return [n for n in shop.mailbot_mail("notice")
            if str(n["In-Reply-To"]).strip("<>") == note_id
            and "not sure" in str(n["Subject"])]


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the daemon we started and reap it."""
    proc.kill()
    proc.wait(timeout=10)


def _reply(shop: Shop, draft: EmailMessage) -> tuple[str, int]:
    customer = shop.customer_of(draft)
    before = len(shop.customer_mail(customer))
    shop.reply(draft, gmail_quote(draft, shop.owner, NOTE))
    return customer, before


# --------------------------------------------------------------------------- SMTP faults


def test_smtp_421_then_success_sends_one_copy(stack: Any, tmp_path: Path) -> None:
    shop = Shop(stack, tmp_path, "f421")
    draft = shop.drafts()[0]
    customer, before = _reply(shop, draft)
    stack.smtp_faults(code=421, count=1)  # after the reply itself went through
    err = shop.run()
    assert "retrying" in err, err
    assert stack.pending_smtp_faults() == []
    assert len(shop.customer_mail(customer)) == before
    assert outbox_note_states(shop) == ["queued"]
    r = cli(shop.config, "outbox", "--retry-now")
    assert r.returncode == 0, r.stderr
    mail = shop.customer_mail(customer)
    assert len(mail) == before + 1
    assert plain(mail[-1]) == NOTE + "\n"
    note_id = str(mail[-1]["Message-ID"]).strip("<>")
    assert deliveries(stack, note_id) == 1
    assert outbox_note_states(shop) == ["sent"]
    assert notes(shop)[customer]["attempts"] == 2
    shop.run()
    shop.run()
    assert len(shop.customer_mail(customer)) == before + 1
    assert deliveries(stack, note_id) == 1
    assert in_folder(shop, "Sent", note_id) == 1


def test_disconnect_after_the_final_dot_is_unknown_never_resent_and_told(
        stack: Any, tmp_path: Path) -> None:
    shop = Shop(stack, tmp_path, "fdrop")
    draft = shop.drafts()[0]
    customer, before = _reply(shop, draft)
    stack.smtp_faults(drop_after_delivery=1)
    err = shop.run()
    assert "unknown" in err, err
    assert outbox_note_states(shop) == ["unknown"]
    copies = note_copies(shop, customer)
    assert len(copies) == 1 and plain(copies[0]) == NOTE + "\n"  # the server did deliver it
    note_id = notes(shop)[customer]["message_id"]
    assert str(copies[0]["Message-ID"]).strip("<>") == note_id
    # this provider does not file SMTP mail in Sent, so nothing resolves it: never resent
    stack.clear_smtp_faults()
    for _ in range(3):
        shop.run()
    r = cli(shop.config, "outbox", "--retry-now")
    assert r.returncode == 0, r.stderr
    assert outbox_note_states(shop) == ["unknown"]
    assert len(shop.customer_mail(customer)) == before + 1
    assert deliveries(stack, note_id) == 1
    assert unsure_notices(shop, note_id) == []  # told only after five minutes
    # five minutes later the owner is told, once
    assert age_unknown_notes(shop) == [note_id]
    shop.run()  # queues the notice
    shop.run()  # sends it
    told = unsure_notices(shop, note_id)
    assert len(told) == 1
    assert customer in plain(told[0]) and "not send it again" in plain(told[0])
    shop.run()
    assert len(unsure_notices(shop, note_id)) == 1
    assert len(shop.customer_mail(customer)) == before + 1
    assert deliveries(stack, note_id) == 1
    assert outbox_note_states(shop) == ["unknown"]


def test_disconnect_after_the_final_dot_is_resolved_through_sent(
        stack: Any, tmp_path: Path) -> None:
    """A provider that files SMTP mail in Sent itself (Gmail, Microsoft): simulated by
    APPENDing the delivered bytes to Sent.  The unknown note is then found there."""
    shop = Shop(stack, tmp_path, "fdrops")
    draft = shop.drafts()[0]
    customer, before = _reply(shop, draft)
    stack.smtp_faults(drop_after_delivery=1)
    shop.run()
    assert outbox_note_states(shop) == ["unknown"]
    delivered = [raw for raw in stack.fetch_all(customer, "INBOX")
                 if b"Message-ID: <" + NOTE_PREFIX.encode() in raw]
    assert len(delivered) == 1
    note_id = notes(shop)[customer]["message_id"]
    stack.append(shop.owner, "Sent", delivered[0], flags=("\\Seen",))
    stack.clear_smtp_faults()
    shop.run()
    assert outbox_note_states(shop) == ["sent"]
    assert notes(shop)[customer]["detail"] == "found in the mailbox"
    shop.run()
    assert len(shop.customer_mail(customer)) == before + 1
    assert deliveries(stack, note_id) == 1
    assert in_folder(shop, "Sent", note_id) == 1  # not APPENDed a second time
    assert unsure_notices(shop, note_id) == []


# --------------------------------------------------------------------------- kill -9


def test_kill_9_between_queued_and_sent_sends_one_copy(stack: Any, tmp_path: Path) -> None:
    shop = Shop(stack, tmp_path, "kq")
    set_undo(shop, 3)
    draft = shop.drafts()[0]
    customer = shop.customer_of(draft)
    before = len(shop.customer_mail(customer))
    # replied before the daemon starts: its first sync reads the reply.  (Replying while
    # it runs can hit a window in which a new INBOX message is not seen for up to
    # ingest.sent_poll_seconds: watch() re-SELECTs the INBOX and IDLEs without comparing
    # UIDNEXT with what the last sync read.)
    reply_sent_first(shop, draft, gmail_quote(draft, shop.owner, NOTE))
    proc = start_daemon(shop.config)
    try:
        wait_for(lambda: customer in notes(shop), 15, "the note to be queued", interval=0.05)
        kill(proc)
        killed_at = datetime.now(UTC)
        # killed inside the undo window: queued, nothing sent yet
        item = notes(shop)[customer]
        assert item["state"] == "queued", item
        assert datetime.fromisoformat(item["not_before"]) > killed_at, item
        assert len(shop.customer_mail(customer)) == before
        assert outbox_note_states(shop) == ["queued"]
        proc = start_daemon(shop.config)
        wait_for(lambda: notes(shop)[customer]["state"] == "sent"
                 and bool(notes(shop)[customer].get("filed")), 30, "the note to be sent")
        stop_daemon(proc)
    finally:
        if proc.poll() is None:
            kill(proc)
    mail = shop.customer_mail(customer)
    assert len(mail) == before + 1, daemon_log(shop.config)
    assert plain(mail[-1]) == NOTE + "\n"
    note_id = notes(shop)[customer]["message_id"]
    assert deliveries(stack, note_id) == 1
    assert in_folder(shop, "Sent", note_id) == 1


def _settled(shop: Shop, customers: list[str]) -> bool:
    if any(c["state"] == "pending" for c in records(shop, "commands")):
        return False
    queued = notes(shop)
    return all(c in queued and (queued[c]["state"] == "unknown" or
                                (queued[c]["state"] == "sent" and queued[c].get("filed")))
               for c in customers)


def test_kill_9_at_random_points_of_a_send_loop(stack: Any, tmp_path: Path) -> None:
    shop = Shop(stack, tmp_path, "krand")
    drafts = shop.drafts()
    assert len(drafts) >= 3
    customers = [shop.customer_of(d) for d in drafts]
    for c in customers:
        assert note_copies(shop, c) == []
    for d in drafts:
        reply_sent_first(shop, d, gmail_quote(d, shop.owner, NOTE))
    rng = random.Random(7)  # seeded: the same kill plan on every run
    kills = []
    for _ in range(4):
        proc = start_daemon(shop.config)
        try:
            seen = sum(1 for e in stack.smtp_log() if (e.get("message_id") or "")
                       .strip("<>").startswith(NOTE_PREFIX))
            if rng.random() < 0.5:
                # any moment: start-up, sync, reading the replies, sending, filing
                delay = rng.uniform(0.2, 2.0)
                time.sleep(delay)
                kills.append(f"after {delay:.2f} s")
            else:
                # inside the send loop: right after a note was handed to the server
                delay = rng.uniform(0.0, 0.2)
                deadline = time.monotonic() + 3  # none comes once all are sent
                while time.monotonic() < deadline and sum(
                        1 for e in stack.smtp_log() if (e.get("message_id") or "")
                        .strip("<>").startswith(NOTE_PREFIX)) <= seen:
                    time.sleep(0.01)
                time.sleep(delay)
                kills.append(f"{delay:.2f} s after a delivery")
        finally:
            kill(proc)
    proc = start_daemon(shop.config)
    try:
        wait_for(lambda: _settled(shop, customers), 45, "every reply to be settled")
        stop_daemon(proc)
    finally:
        if proc.poll() is None:
            kill(proc)
    why = f"kills: {kills}\n{daemon_log(shop.config)[-4000:]}"
    queued = notes(shop)
    unknown = []
    for c in customers:
        item = queued[c]
        copies = note_copies(shop, c)
        assert len(copies) <= 1, f"{c} got {len(copies)} copies; {why}"
        # the mailbox is the truth here: the test server logs a delivery only after its
        # LMTP step, and a client killed meanwhile cancels that step's logging
        assert deliveries(stack, item["message_id"]) <= len(copies), why
        for m in copies:
            assert str(m["Message-ID"]).strip("<>") == item["message_id"], why
            assert plain(m) == NOTE + "\n"
        if item["state"] == "sent":
            assert len(copies) == 1, f"{c}: sent but not delivered; {why}"
            assert in_folder(shop, "Sent", item["message_id"]) == 1, why
        else:
            assert item["state"] == "unknown", why
            unknown.append(item["message_id"])
    # a note left unknown (zero or one copy) is never resent and the owner is told
    if unknown:
        assert sorted(age_unknown_notes(shop)) == sorted(unknown)
        shop.run()
        shop.run()
        for note_id in unknown:
            assert len(unsure_notices(shop, note_id)) == 1, why
    for c in customers:
        assert len(note_copies(shop, c)) <= 1, why


def test_kill_9_while_the_server_holds_the_data_is_unknown_and_told(
        stack: Any, tmp_path: Path) -> None:
    """The daemon dies after the server took the note but before it answered: on restart
    the note is ``unknown``, never sent again, and the owner is told."""
    shop = Shop(stack, tmp_path, "kdata")
    draft = shop.drafts()[0]
    customer = shop.customer_of(draft)
    before = len(shop.customer_mail(customer))
    reply_sent_first(shop, draft, gmail_quote(draft, shop.owner, NOTE))
    stack.smtp_faults(drop_after_delivery=1, stall=20)  # deliver, then hold the answer
    proc = start_daemon(shop.config)
    try:
        wait_for(lambda: any(customer in e["rcpts"] for e in stack.smtp_log()), 20,
                 "the note to reach the server")
        kill(proc)
        assert notes(shop)[customer]["state"] == "sending"
        stack.clear_smtp_faults()
        proc = start_daemon(shop.config)
        wait_for(lambda: notes(shop)[customer]["state"] == "unknown", 15,
                 "the interrupted note to become unknown")
        time.sleep(6)  # more than one outbox check of the daemon: nothing is resent
        stop_daemon(proc)
    finally:
        if proc.poll() is None:
            kill(proc)
    note_id = notes(shop)[customer]["message_id"]
    assert len(shop.customer_mail(customer)) == before + 1
    assert deliveries(stack, note_id) == 1
    assert outbox_note_states(shop) == ["unknown"]
    assert age_unknown_notes(shop) == [note_id]
    shop.run()
    shop.run()
    assert len(unsure_notices(shop, note_id)) == 1
    assert len(shop.customer_mail(customer)) == before + 1
    assert deliveries(stack, note_id) == 1


def test_a_reply_arriving_while_the_daemon_is_busy_is_not_left_waiting(
        stack: Any, tmp_path: Path) -> None:
    """Mail delivered between two IDLEs (here: during the 5 s Sent check after the first
    note) must be seen at the next SELECT, not at the next Sent poll minutes later."""
    shop = Shop(stack, tmp_path, "busy", sent_wait=60)
    a, b = shop.drafts()[:2]
    ca, cb = shop.customer_of(a), shop.customer_of(b)
    proc = start_daemon(shop.config)
    try:
        wait_for(lambda: "next digest" in daemon_log(shop.config), 30, "the daemon's watch loop")
        reply_sent_first(shop, a, gmail_quote(a, shop.owner, NOTE))
        wait_for(lambda: notes(shop).get(ca, {}).get("state") == "sent", 30, "note A sent")
        reply_sent_first(shop, b, gmail_quote(b, shop.owner, NOTE))
        # the daemon's sent_poll_seconds is 180: 30 s is only enough with the UIDNEXT check
        wait_for(lambda: cb in notes(shop), 30, "reply B to be acted on")
    finally:
        stop_daemon(proc)
