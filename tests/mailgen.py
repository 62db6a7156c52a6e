"""Deterministic test mail: single messages and whole generated mailboxes with known answers."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid


def message(
    sender: str,
    to: str,
    subject: str = "Hello",
    body: str = "Hello there,\nhow are you?\n",
    *,
    date: datetime | None = None,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    in_reply_to: str = "",
    html: str | None = None,
    attachment: bytes | None = None,
) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Date"] = format_datetime(date or datetime.now(UTC))
    m["Message-ID"] = message_id or make_msgid(domain="test.example")
    if in_reply_to:
        m["In-Reply-To"] = in_reply_to
        m["References"] = in_reply_to
    for k, v in (headers or {}).items():
        m[k] = v
    m.set_content(body)
    if html is not None:
        m.add_alternative(html, subtype="html")
    if attachment is not None:
        m.add_attachment(attachment, maintype="application", subtype="octet-stream",
                         filename="catalogue.bin")
    return bytes(m)


def newsletter(owner: str, n: int = 0, date: datetime | None = None) -> bytes:
    return message("Linen Weekly <news@weekly.example>", owner, f"Weekly #{n}", "News.",
                   date=date, headers={"List-Id": "<weekly.example>",
                                       "List-Unsubscribe": "<mailto:u@weekly.example>"})


def auto_reply(owner: str, date: datetime | None = None) -> bytes:
    return message("Ben <ben@carter.example>", owner, "Automatic reply: your note",
                   "I am away.", date=date, headers={"Auto-Submitted": "auto-replied"})


def bounce(owner: str, date: datetime | None = None) -> bytes:
    when = format_datetime(date or datetime.now(UTC))
    mid = make_msgid(domain="mx.example")
    return (
        "Return-Path: <>\r\n"
        "From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\n"
        f"To: {owner}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {when}\r\n"
        f"Message-ID: {mid}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
        "\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
        "Your message could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; x@y.example\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n--b1--\r\n"
    ).encode()


def no_reply(owner: str, date: datetime | None = None) -> bytes:
    return message("Shop <no-reply@shop.example>", owner, "Your order #1", "Thanks.", date=date)


@dataclass
class Mailbox:
    """A generated mailbox and what mailbot must make of it."""

    inbox: list[tuple[bytes, datetime]] = field(default_factory=list)
    sent: list[tuple[bytes, datetime]] = field(default_factory=list)
    touchpoints: dict[str, int] = field(default_factory=dict)  # contact -> expected count


def generate(owner: str, *, customers: int, messages: int, seed: int = 1,
             now: datetime | None = None, days: int = 300) -> Mailbox:
    """About ``messages`` messages: customer mail both ways plus non-customer mail."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    box = Mailbox()
    people = [(f"Customer {i}", f"customer{i}@c{i % 7}.example") for i in range(customers)]
    for i in range(messages):
        when = now - timedelta(days=rng.uniform(1, days))
        kind = rng.random()
        name, addr = people[rng.randrange(customers)]
        if kind < 0.55:
            box.inbox.append((message(f"{name} <{addr}>", owner, f"Question {i}",
                                      f"Hi, question number {i}.\n", date=when), when))
            box.touchpoints[addr] = box.touchpoints.get(addr, 0) + 1
        elif kind < 0.8:
            box.sent.append((message(owner, f"{name} <{addr}>", f"Re: Question {i}",
                                     f"Answer {i}.\n", date=when), when))
            box.touchpoints[addr] = box.touchpoints.get(addr, 0) + 1
        elif kind < 0.88:
            box.inbox.append((newsletter(owner, i, when), when))
        elif kind < 0.93:
            box.inbox.append((auto_reply(owner, when), when))
        elif kind < 0.97:
            box.inbox.append((no_reply(owner, when), when))
        else:
            box.inbox.append((bounce(owner, when), when))
    return box
