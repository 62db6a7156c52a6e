"""Emails for reply-to-send (pure): the note to a customer, and notices to the owner.

The note carries exactly the owner's approved text and nothing else: no quote,
no marker, no private context. Notices and confirmation requests go to the
owner only; a confirmation request starts with the marker line so the owner's
"yes" can be read with the same extraction rules as a reply to a draft.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from email.message import EmailMessage
from email.utils import make_msgid

from .digest import MARKER, _address, _mailbot_from, check_header_text, message_id_for


def build_note(*, text: str, subject: str, owner_name: str, owner_address: str,
               contact: str, contact_name: str, in_reply_to: str, references: list[str],
               token: str, now: datetime, tz: tzinfo, domain: str) -> EmailMessage:
    """The note to the customer, from the owner's own name and address."""
    msg = EmailMessage()
    msg["From"] = _address(owner_name, owner_address, "owner")
    msg["To"] = _address(contact_name, contact, "customer")
    msg["Subject"] = check_header_text(subject, "the note's subject")
    msg["Date"] = now.astimezone(tz)
    msg["Message-ID"] = f"<{message_id_for('note', token, domain)}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{check_header_text(in_reply_to, 'a message id')}>"
        refs = [r for r in references if r] or [in_reply_to]
        msg["References"] = " ".join(f"<{check_header_text(r, 'a message id')}>" for r in refs)
    body = text.strip("\n") + "\n"
    msg.set_content(body, cte="quoted-printable")
    return msg


def _to_owner(kind: str, subject: str, body: str, *, owner_name: str, owner_address: str,
              token: str, now: datetime, tz: tzinfo, domain: str,
              in_reply_to: str = "") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = _mailbot_from(owner_name, owner_address)
    msg["To"] = _address(owner_name, owner_address, "owner")
    msg["Subject"] = check_header_text(subject, "a notice subject")
    msg["Date"] = now.astimezone(tz)
    msg["Message-ID"] = (f"<{message_id_for(kind, token, domain)}>" if token
                         else make_msgid(idstring="mailbot", domain=domain))
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = f"<{in_reply_to}>"
    msg["Auto-Submitted"] = "auto-replied" if in_reply_to else "auto-generated"
    msg["X-Mailbot"] = kind
    msg.set_content(body, cte="quoted-printable")
    return msg


def build_notice(*, subject: str, body: str, owner_name: str, owner_address: str,
                 token: str, now: datetime, tz: tzinfo, domain: str,
                 in_reply_to: str = "") -> EmailMessage:
    """A short message to the owner: a refusal, a warning, an acknowledgement."""
    return _to_owner("notice", f"mailbot: {subject}", body.rstrip() + "\n\n-- \nmailbot\n",
                     owner_name=owner_name, owner_address=owner_address, token=token,
                     now=now, tz=tz, domain=domain, in_reply_to=in_reply_to)


def confirm_body(text: str, contact_label: str, why: list[str], *, need: str = "yes") -> str:
    reasons = "".join(f"- {w}\n" for w in why)
    return (
        f"{MARKER}\n"
        f"Reply \"{need}\" to send exactly the note below to {contact_label}.\n"
        "Reply \"skip\" to drop it. Nothing is sent until you answer.\n\n"
        f"Why I am asking:\n{reasons}\n"
        "The note, exactly as it would be sent:\n\n"
        f"{text.strip()}\n"
    )


def build_confirm(*, text: str, contact_label: str, why: list[str], subject: str,
                  owner_name: str, owner_address: str, token: str, now: datetime,
                  tz: tzinfo, domain: str, in_reply_to: str, need: str = "yes"
                  ) -> EmailMessage:
    """Ask the owner before sending: what would be sent, and why mailbot is unsure."""
    return _to_owner("confirm", f"Send this to {contact_label}? {subject}",
                     confirm_body(text, contact_label, why, need=need),
                     owner_name=owner_name, owner_address=owner_address, token=token,
                     now=now, tz=tz, domain=domain, in_reply_to=in_reply_to)
