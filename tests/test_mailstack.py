"""The private mail stack itself works: real SMTP, IMAP, IMAPS, faults and outages."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import make_msgid

import pytest
from imapclient.exceptions import IMAPClientError, LoginError

from .mailstack import MailStack

pytestmark = pytest.mark.stack

CUSTOMER = "customer@example.org"


def make_message(to: str, subject: str = "hello", body: str = "Hi there.\n") -> EmailMessage:
    """A small customer message with a unique Message-ID."""
    msg = EmailMessage()
    msg["From"] = CUSTOMER
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="example.org")
    msg.set_content(body)
    return msg


def raw(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=SMTP_POLICY)


def test_ports_are_free_ones_and_distinct(stack: MailStack) -> None:
    ports = {stack.imap_port, stack.imaps_port, stack.smtp_port, stack.smtps_port}
    assert len(ports) == 4
    assert not ports & {10143, 10993, 10025, 10465}  # the reference stack's fixed ports
    assert stack.status() == {"dovecot": True, "smtpd": True}


def test_deliver_with_starttls_and_auth_then_read_over_imap_and_imaps(
    stack: MailStack, owner: str
) -> None:
    msg = make_message(owner, body="STARTTLS body\n")
    assert stack.deliver(raw(msg), CUSTOMER, [owner], login="alice") == {}
    second = make_message(owner, body="SMTPS body\n")
    assert stack.deliver(raw(second), CUSTOMER, owner, implicit_tls=True) == {}

    for tls in (False, True):
        with stack.imap(owner, tls=tls) as client:
            client.select_folder("INBOX", readonly=True)
            uids = client.search(["HEADER", "Message-ID", msg["Message-ID"]])
            assert len(uids) == 1
            body = client.fetch(uids, ["BODY.PEEK[]"])[uids[0]][b"BODY[]"]
            assert b"STARTTLS body" in body
    assert [b"STARTTLS body" in m for m in stack.fetch_all(owner)] == [True, False]

    log = stack.smtp_log(rcpt=owner)
    assert [(e["message_id"], e["auth"], e["tls"]) for e in log] == [
        (msg["Message-ID"], "alice@example.test", True),
        (second["Message-ID"], None, True),
    ]
    assert {e["port"] for e in log} == {stack.smtp_port, stack.smtps_port}


def test_unknown_recipient_is_refused_with_550(stack: MailStack) -> None:
    nobody = "nobody-here@example.test"
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        stack.deliver(raw(make_message(nobody)), CUSTOMER, [nobody])
    assert refused.value.recipients[nobody][0] == 550


def test_wrong_imap_password_is_refused(stack: MailStack, owner: str) -> None:
    with pytest.raises(LoginError):
        stack.imap(owner, password="wrong")
    with pytest.raises(LoginError):
        stack.imap(owner, tls=True, password="wrong")


def test_change_uidvalidity_really_changes_it(stack: MailStack, owner: str) -> None:
    uid = stack.append(owner, "Sent", raw(make_message(CUSTOMER)), flags=[b"\\Seen"])
    assert uid == 1
    old = stack.uidvalidity(owner, "Sent")
    new = stack.change_uidvalidity(owner, "Sent")
    assert new != old
    with stack.imap(owner) as client:
        selected = client.select_folder("Sent", readonly=True)
        assert selected[b"UIDVALIDITY"] == new
        assert client.search("ALL") == [1]  # Maildir keeps the UIDs


def test_restart_dovecot_then_new_connections_work(stack: MailStack, owner: str) -> None:
    stack.deliver(raw(make_message(owner)), CUSTOMER, [owner])
    for crash in (False, True):
        with stack.imap(owner) as before:
            before.select_folder("INBOX")
            stack.restart_dovecot(crash=crash)
            with pytest.raises((IMAPClientError, OSError)):
                before.noop()
        assert stack.message_count(owner, "INBOX") == 1
        with stack.imap(owner, tls=True) as after:
            assert after.select_folder("INBOX")[b"EXISTS"] == 1


def test_dovecot_down_means_smtp_451_and_no_delivery(stack: MailStack, owner: str) -> None:
    stack.stop_dovecot(crash=True)
    assert stack.status() == {"dovecot": False, "smtpd": True}
    with pytest.raises(smtplib.SMTPDataError) as failed:
        stack.deliver(raw(make_message(owner)), CUSTOMER, [owner])
    assert failed.value.smtp_code == 451
    stack.start_dovecot()
    assert stack.smtp_log(rcpt=owner) == []
    assert stack.message_count(owner, "INBOX") == 0


def test_kick_disconnects_sessions(stack: MailStack, owner: str) -> None:
    assert stack.kick(owner) is False
    with stack.imap(owner) as client:
        client.select_folder("INBOX")
        assert stack.kick(owner) is True
        with pytest.raises((IMAPClientError, OSError)):
            client.noop()


def test_smtp_421_fault_then_success(stack: MailStack, owner: str) -> None:
    stack.smtp_faults(code=421, count=1)
    msg = make_message(owner)
    with pytest.raises(smtplib.SMTPDataError) as failed:
        stack.deliver(raw(msg), CUSTOMER, [owner])
    assert failed.value.smtp_code == 421
    assert stack.message_count(owner, "INBOX") == 0
    assert stack.pending_smtp_faults() == []

    assert stack.deliver(raw(msg), CUSTOMER, [owner]) == {}
    assert [e["message_id"] for e in stack.smtp_log(rcpt=owner)] == [msg["Message-ID"]]
    assert stack.message_count(owner, "INBOX") == 1


def test_smtp_drop_after_delivery_is_ambiguous_but_delivered(stack: MailStack, owner: str) -> None:
    stack.smtp_faults(drop_after_delivery=1)
    msg = make_message(owner)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        stack.deliver(raw(msg), CUSTOMER, [owner])
    assert stack.message_count(owner, "INBOX") == 1
    (entry,) = stack.smtp_log(rcpt=owner)
    assert (entry["message_id"], entry["fault"]) == (msg["Message-ID"], "drop")


def test_smtp_stall_after_delivery_times_the_client_out(stack: MailStack, owner: str) -> None:
    stack.smtp_faults(drop_after_delivery=1, stall=2.0)
    with pytest.raises((smtplib.SMTPServerDisconnected, TimeoutError)):
        stack.deliver(raw(make_message(owner)), CUSTOMER, [owner], timeout=0.5)
    assert stack.message_count(owner, "INBOX") == 1


def test_add_user_mailboxes_are_isolated(stack: MailStack) -> None:
    first, second = stack.new_user(), stack.new_user()
    assert first != second
    assert first.startswith("owner-") and first.endswith("@example.test")
    assert stack.add_user(first.split("@")[0]) == first  # idempotent

    stack.deliver(raw(make_message(first)), CUSTOMER, [first])
    assert stack.message_count(first, "INBOX") == 1
    assert stack.message_count(second, "INBOX") == 0
    assert stack.fetch_all(second) == []
    with stack.imap(second) as client:
        assert {name for _, _, name in client.list_folders()} == {
            "INBOX",
            "Sent",
            "Drafts",
            "Trash",
            "Junk",
        }
