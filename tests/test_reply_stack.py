"""Reply-to-send end to end: the owner replies to a draft, the customer gets exactly the note, once.

Replies are composed as real clients quote, delivered by SMTP into the owner's INBOX and
APPENDed to the owner's Sent (as a client files its own sent mail).
"""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mailbot.demo import CUSTOMERS, demo_messages
from mailbot.parse import parse_headers

from .helpers import cli, write_config

pytestmark = pytest.mark.stack

BERLIN = ZoneInfo("Europe/Berlin")


class Shop:
    """An owner with the demo history, customers with real mailboxes, today's drafts."""

    def __init__(self, stack: Any, tmp: Path, tag: str, *, sent_wait: int = 0,
                 undo: int = 0) -> None:
        self.stack = stack
        self.owner = stack.add_user(f"owner-{tag}")
        self.customers: dict[str, str] = {}  # demo address -> mailbox address
        for i, (_name, addr, _gap, _n) in enumerate(CUSTOMERS):
            self.customers[addr] = stack.add_user(f"c{i}-{tag}")
        for raw in demo_messages():
            raw = raw.replace(b"olivia@linen.example", self.owner.encode())
            for old, new in self.customers.items():
                raw = raw.replace(old.encode(), new.encode())
            msg = parse_headers(raw)
            folder = "Sent" if msg.sender and msg.sender.address == self.owner else "INBOX"
            stack.append(self.owner, folder, raw, msg_time=msg.date)
        local = (datetime.now(UTC) - timedelta(minutes=2)).astimezone(BERLIN)
        extra = f"""
[digest]
time = "{local:%H:%M}"
days = "*"

[send]
undo_seconds = {undo}
sent_wait_seconds = {sent_wait}
"""
        self.config = write_config(tmp, stack, self.owner, extra=extra)
        self.run()

    def run(self) -> str:
        r = cli(self.config, "run", "--once")
        assert r.returncode == 0, r.stderr
        return r.stderr

    def inbox(self) -> list[EmailMessage]:
        out = []
        for raw in self.stack.fetch_all(self.owner, "INBOX"):
            m = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(m, EmailMessage)
            out.append(m)
        return out

    def mailbot_mail(self, kind: str) -> list[EmailMessage]:
        return [m for m in self.inbox() if m["X-Mailbot"] == kind]

    def drafts(self) -> list[EmailMessage]:
        return self.mailbot_mail("draft")

    def customer_mail(self, address: str) -> list[EmailMessage]:
        out = []
        for raw in self.stack.fetch_all(address, "INBOX"):
            m = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(m, EmailMessage)
            out.append(m)
        return out

    def reply(self, to: EmailMessage, body: str, *, in_sent: bool = True,
              references: str | None = None, html: str | None = None) -> str:
        """Send the owner's reply like a mail client: SMTP into INBOX, a copy APPENDed to Sent."""
        m = EmailMessage()
        m["From"] = f"Olivia Owner <{self.owner}>"
        m["To"] = str(to["From"])
        m["Subject"] = "Re: " + str(to["Subject"])
        m["Date"] = format_datetime(datetime.now(UTC))
        mid = make_msgid(domain="mail.example.test")
        m["Message-ID"] = mid
        m["In-Reply-To"] = str(to["Message-ID"])
        m["References"] = references if references is not None else (
            f"{to.get('References', '')} {to['Message-ID']}".strip())
        if html is None:
            m.set_content(body)
        else:
            m.set_content(html, subtype="html")
        raw = bytes(m)
        self.stack.deliver(raw, self.owner, [self.owner])
        if in_sent:
            self.stack.append(self.owner, "Sent", raw, flags=("\\Seen",))
        return mid

    def customer_of(self, draft: EmailMessage) -> str:
        body = plain(draft)
        for addr in self.customers.values():
            if addr in body:
                return addr
        raise AssertionError("no customer address in the draft's private context")


def plain(m: EmailMessage) -> str:
    part = m.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content()).replace("\r\n", "\n")  # CRLF on the wire


def gmail_quote(draft: EmailMessage, owner: str, text: str) -> str:
    quoted = "\n".join(("> " + ln) if ln else ">" for ln in plain(draft).splitlines())
    return (f"{text}\n\nOn Tue, 24 Nov 2026 at 07:31, mailbot (Olivia) <{owner}> wrote:\n\n"
            f"{quoted}\n")


def outlook_quote(draft: EmailMessage, owner: str, text: str) -> str:
    return (f"{text}\n\n________________________________\nFrom: mailbot (Olivia) <{owner}>\n"
            f"Sent: Tuesday, November 24, 2026 7:31 AM\nTo: Olivia Owner <{owner}>\n"
            f"Subject: {draft['Subject']}\n\n{plain(draft)}")


NOTE = ("Hi there,\n\nwe just got the spring linen in and I thought of you straight away.\n"
        "Come by whenever you like!\n\nOlivia")


@pytest.mark.parametrize("style", ["gmail", "outlook"])
def test_a_reply_sends_exactly_the_owners_text_once(mail_stack: Any, tmp_path: Path,
                                                    style: str) -> None:
    shop = Shop(mail_stack, tmp_path, f"send-{style}")
    draft = shop.drafts()[0]
    customer = shop.customer_of(draft)
    before = len(shop.customer_mail(customer))
    quote = gmail_quote if style == "gmail" else outlook_quote
    shop.reply(draft, quote(draft, shop.owner, NOTE))
    shop.run()
    mail = shop.customer_mail(customer)
    assert len(mail) == before + 1
    note = mail[-1]
    assert plain(note) == NOTE + "\n"
    assert note["From"].addresses[0].addr_spec == shop.owner
    assert str(note["Message-ID"]).startswith("<mailbot.note.")
    # filed in the owner's Sent, and logged as an outbound touchpoint on the next sync
    sent = [parse_headers(r) for r in mail_stack.fetch_all(shop.owner, "Sent")]
    assert sum(1 for m in sent if m.message_id == str(note["Message-ID"]).strip("<>")) == 1
    shop.run()
    row = json.loads(cli(shop.config, "customer", customer, "--json").stdout)
    assert any(t["message_id"] == str(note["Message-ID"]).strip("<>") and t["direction"] == "out"
               for t in row["timeline"])
    # a second reply to the same draft is refused and the owner is told
    shop.reply(draft, gmail_quote(draft, shop.owner, "Another note, please."))
    shop.run()
    shop.run()  # the notice goes out through the outbox
    assert len(shop.customer_mail(customer)) == before + 1
    notices = shop.mailbot_mail("notice")
    assert any("already handled" in plain(n) for n in notices)


def test_a_forged_reply_not_in_sent_never_sends(mail_stack: Any, tmp_path: Path) -> None:
    shop = Shop(mail_stack, tmp_path, "forged")
    draft = shop.drafts()[0]
    customer = shop.customer_of(draft)
    before = len(shop.customer_mail(customer))
    shop.reply(draft, gmail_quote(draft, shop.owner, NOTE), in_sent=False)
    shop.run()
    shop.run()
    assert len(shop.customer_mail(customer)) == before
    assert any("not in your Sent folder" in plain(n) for n in shop.mailbot_mail("notice"))


def test_an_altered_token_never_sends(mail_stack: Any, tmp_path: Path) -> None:
    shop = Shop(mail_stack, tmp_path, "token")
    draft = shop.drafts()[0]
    customer = shop.customer_of(draft)
    before = len(shop.customer_mail(customer))
    real = str(draft["Message-ID"])
    forged = real.replace("mailbot.draft.", "mailbot.draft.x")
    m = EmailMessage()
    m["From"] = shop.owner
    m["To"] = shop.owner
    m["Subject"] = "Re: " + str(draft["Subject"])
    m["Message-ID"] = make_msgid(domain="mail.example.test")
    m["In-Reply-To"] = forged
    m["References"] = forged
    m.set_content(NOTE)
    raw = bytes(m)
    mail_stack.deliver(raw, shop.owner, [shop.owner])
    mail_stack.append(shop.owner, "Sent", raw)
    shop.run()
    shop.run()
    assert len(shop.customer_mail(customer)) == before
    assert any("no draft mailbot knows" in plain(n) for n in shop.mailbot_mail("notice"))


def test_a_doubtful_reply_asks_first_and_sends_after_yes(mail_stack: Any, tmp_path: Path) -> None:
    shop = Shop(mail_stack, tmp_path, "doubt")
    draft = shop.drafts()[0]
    customer = shop.customer_of(draft)
    before = len(shop.customer_mail(customer))
    # no quote at all: the client dropped it, so the marker cannot be found
    shop.reply(draft, NOTE)
    shop.run()
    shop.run()
    assert len(shop.customer_mail(customer)) == before
    confirms = shop.mailbot_mail("confirm")
    assert len(confirms) == 1 and NOTE.splitlines()[2] in plain(confirms[0])
    shop.reply(confirms[0], gmail_quote(confirms[0], shop.owner, "yes"))
    shop.run()
    mail = shop.customer_mail(customer)
    assert len(mail) == before + 1 and plain(mail[-1]) == NOTE + "\n"


def test_an_opted_out_customer_needs_send_anyway(mail_stack: Any, tmp_path: Path) -> None:
    shop = Shop(mail_stack, tmp_path, "optout")
    draft = shop.drafts()[0]
    customer = shop.customer_of(draft)
    stop = EmailMessage()
    stop["From"] = customer
    stop["To"] = shop.owner
    stop["Subject"] = "please stop"
    stop["Message-ID"] = make_msgid(domain="example.test")
    stop.set_content("Please stop emailing me and remove me from your list.")
    mail_stack.deliver(bytes(stop), customer, [shop.owner])
    before = len(shop.customer_mail(customer))
    shop.reply(draft, gmail_quote(draft, shop.owner, "yes"))
    shop.run()
    shop.run()
    assert len(shop.customer_mail(customer)) == before
    confirms = shop.mailbot_mail("confirm")
    assert len(confirms) == 1 and "send anyway" in plain(confirms[0])
    shop.reply(confirms[0], gmail_quote(confirms[0], shop.owner, "yes"))  # not enough
    shop.run()
    shop.run()
    assert len(shop.customer_mail(customer)) == before


def test_commands_change_what_ranking_reads(mail_stack: Any, tmp_path: Path) -> None:
    shop = Shop(mail_stack, tmp_path, "cmds")
    drafts = shop.drafts()
    assert len(drafts) >= 3
    said = {"never": drafts[0], "not a customer": drafts[1], "snooze 2w": drafts[2]}
    counts = {shop.customer_of(d): len(shop.customer_mail(shop.customer_of(d))) for d in drafts}
    for word, d in said.items():
        shop.reply(d, gmail_quote(d, shop.owner, word))
    shop.run()
    rows = {r["address"]: r for r in json.loads(cli(shop.config, "customers", "--json").stdout)}
    assert rows[shop.customer_of(drafts[0])]["status"] == "opted_out"
    assert rows[shop.customer_of(drafts[1])]["status"] == "not_customer"
    preview = cli(shop.config, "digest", "--preview", "--as-of",
                  (datetime.now(UTC) + timedelta(days=1)).date().isoformat())
    assert preview.returncode == 0, preview.stderr
    for d in drafts[:3]:
        assert shop.customer_of(d) not in preview.stdout
    # commands are not notes: nobody got mail
    assert {a: len(shop.customer_mail(a)) for a in counts} == counts


def test_undo_within_the_window_cancels_the_note(mail_stack: Any, tmp_path: Path) -> None:
    shop = Shop(mail_stack, tmp_path, "undo", undo=600)
    draft = shop.drafts()[0]
    customer = shop.customer_of(draft)
    before = len(shop.customer_mail(customer))
    shop.reply(draft, gmail_quote(draft, shop.owner, NOTE))
    shop.run()
    listing = cli(shop.config, "outbox").stdout
    assert any(ln.split()[2:4] == ["note", "queued"] for ln in listing.splitlines()[1:])
    shop.reply(draft, gmail_quote(draft, shop.owner, "undo"))
    shop.run()
    shop.run()
    listing = cli(shop.config, "outbox").stdout
    assert any(ln.split()[2:4] == ["note", "cancelled"] for ln in listing.splitlines()[1:])
    assert len(shop.customer_mail(customer)) == before
    assert any("nothing was sent" in str(n["Subject"]) for n in shop.mailbot_mail("notice"))


def test_a_5xx_refusal_of_a_note_is_reported_to_the_owner(mail_stack: Any,
                                                          tmp_path: Path) -> None:
    shop = Shop(mail_stack, tmp_path, "fivexx")
    draft = shop.drafts()[0]
    customer = shop.customer_of(draft)
    before = len(shop.customer_mail(customer))
    shop.reply(draft, gmail_quote(draft, shop.owner, NOTE))
    mail_stack.smtp_faults(code=554, count=1)
    shop.run()
    mail_stack.clear_smtp_faults()
    shop.run()
    assert len(shop.customer_mail(customer)) == before
    assert any("could not be sent" in str(n["Subject"]) for n in shop.mailbot_mail("notice"))
