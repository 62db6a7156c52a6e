"""Picks + drafts -> the morning digest email and one draft email per pick (pure).

Nothing here sends, reads the clock or draws random numbers, except :func:`new_token`,
which callers use to pre-assign tokens (and so Message-IDs) before building, recording
them in the database, and handing the messages to the outbox.

The digest is ``multipart/alternative`` (plain text, then HTML with inline CSS only, one
600px column, no images, every value escaped). Each pick's draft is its own
``text/plain`` email threaded under the digest (In-Reply-To and References = the
digest's Message-ID), so that replying concerns exactly one customer.

Layout of a draft email's body (see :func:`draft_body` for the reasons)::

    ─── Reply above this line · mailbot ───        <- MARKER, always the first line
    Reply with nothing, or "yes", to send the note below to Ana Lima as it is.
    To change it, write your own version above the line. Or reply:
    skip · snooze 2w · never · not a customer · done
                                                   <- blank line
    Hi Ana,                                        <- the draft text, exactly as stored
    ...                                               (what an empty reply or "yes" sends)
    Olivia
                                                   <- blank line
    ─── For you only, never sent ───               <- PRIVATE_HEADING: private context
    To: Ana Lima <ana@lima.example>                   starts here and runs to the end
    Subject: Hello from Olivia
    Why: Ana usually writes every 3 weeks; quiet for 9 ...
    Recent:
    ← Tue 3 Nov · Ana: spring order: "Do you still have ..."
    Last 12 months, Dec to Nov (18 emails): ▁▂▁▃▅▂▁▁▂▁▁▁
    mailbot-private-<token>                        <- the canary, the very last line
"""

from __future__ import annotations

import html
import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from email.headerregistry import Address
from email.message import EmailMessage

from mailbot.drafting import clean_subject, first_name_of, note_subject, one_line
from mailbot.errors import InputError
from mailbot.models import MAILBOT_ID_PREFIX, Direction, Pick, Reason, Touchpoint

MARKER = "─── Reply above this line · mailbot ───"
PRIVATE_HEADING = "─── For you only, never sent ───"
CANARY_PREFIX = "mailbot-private-"
SPARK_CHARS = "▁▂▃▄▅▆▇█"

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22,128}$")
_KIND = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_LINE_BREAKS = frozenset("\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

REASON_LABELS: dict[Reason, str] = {
    Reason.UNANSWERED: "Waiting for your reply",
    Reason.LAPSED: "Gone quiet",
    Reason.WELCOME: "New customer",
    Reason.MILESTONE: "Milestone",
    Reason.NEGATIVE: "Unhappy last email",
    Reason.NO_REASON: "Just because",
}
_REASON_COLOURS: dict[Reason, tuple[str, str]] = {  # (background, text), AA contrast
    Reason.UNANSWERED: ("#fdecc8", "#6b4500"),
    Reason.LAPSED: ("#e3ecfa", "#1f4a8a"),
    Reason.WELCOME: ("#ddf3e4", "#1d5c33"),
    Reason.MILESTONE: ("#f1e4fa", "#5b2a86"),
    Reason.NEGATIVE: ("#fbe2e2", "#8a1f1f"),
    Reason.NO_REASON: ("#ececec", "#3d3d3d"),
}


@dataclass(frozen=True)
class Figures:
    """The digest's header line."""

    customers: int
    replies_waiting: int
    gone_quiet_this_month: int
    notes_sent_7d: int


@dataclass(frozen=True)
class DraftEmail:
    """One pick's draft email, ready for the outbox; ``token`` goes in the drafts table.

    ``private_context`` is the text below :data:`PRIVATE_HEADING` (with the canary), for
    the leak check; ``note_subject`` is the subject the note to the customer would carry.
    """

    token: str
    contact: str
    reason: Reason
    text: str
    message_id: str  # without angle brackets
    message: EmailMessage = field(compare=False, repr=False)
    note_subject: str = ""
    private_context: str = field(default="", repr=False)


# --------------------------------------------------------------------------- helpers


def new_token() -> str:
    """An unguessable token (192 bits, URL-safe): the only randomness in this module."""
    return secrets.token_urlsafe(24)


def message_id_for(kind: str, token: str, domain: str) -> str:
    """``mailbot.{kind}.{token}@{domain}``, without angle brackets."""
    if not _KIND.match(kind):
        raise ValueError(f"bad Message-ID kind {kind!r}")
    if not _TOKEN.match(token):
        raise ValueError("a token must be 22-128 URL-safe characters (at least 128 bits)")
    if not _DOMAIN.match(domain) or ".." in domain:
        raise ValueError(f"bad Message-ID domain {domain!r}")
    return f"{MAILBOT_ID_PREFIX}{kind}.{token}@{domain}"


def canary_for(token: str) -> str:
    return f"{CANARY_PREFIX}{token}"


def check_header_text(value: str, what: str) -> str:
    """``value`` unchanged, or InputError when it holds a line break (header injection)."""
    if any(c in _LINE_BREAKS for c in value):
        raise InputError(f"{what} contains a line break and cannot go into an email")
    return value


def validate_pick(pick: Pick) -> None:
    """InputError when a pick holds a name, address or subject with a line break.

    parse.py unfolds headers, so a line break here means broken or hostile input; a
    caller can use this to drop one pick rather than lose the whole digest.
    """
    check_header_text(pick.name, f"the name of {pick.contact!r}")
    check_header_text(pick.contact, "a customer address")
    check_header_text(pick.reply_to_subject, f"a subject from {pick.contact!r}")
    for t in pick.recent:
        check_header_text(t.subject, f"a subject from {pick.contact!r}")


def _address(display_name: str, addr_spec: str, what: str) -> Address:
    check_header_text(display_name, f"the {what} name")
    check_header_text(addr_spec, f"the {what} address")
    try:
        return Address(display_name=display_name, addr_spec=addr_spec)
    except (ValueError, IndexError) as exc:
        raise InputError(f"the {what} address {addr_spec!r} is not valid: {exc}") from None


def sparkline(counts: Sequence[int]) -> str:
    """One bar per month: ``▁`` for none, ``▂``..``█`` scaled to the busiest month."""
    top = max(counts, default=0)
    if top <= 0:
        return SPARK_CHARS[0] * len(counts)
    steps = len(SPARK_CHARS) - 1
    return "".join(
        SPARK_CHARS[0] if c <= 0 else SPARK_CHARS[max(1, math.ceil(c / top * steps))]
        for c in counts
    )


def format_day(when: datetime, tz: tzinfo, now: datetime) -> str:
    """``Tue 3 Nov`` in the owner's time zone; ``3 Nov 2024`` outside the current year."""
    local = when.astimezone(tz)
    if local.year == now.astimezone(tz).year:
        return f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]}"
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year}"


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _figures(figures: Figures) -> tuple[str, ...]:
    return (
        _plural(figures.customers, "customer", "customers"),
        _plural(figures.replies_waiting, "reply waiting", "replies waiting"),
        f"{figures.gone_quiet_this_month} gone quiet this month",
        _plural(figures.notes_sent_7d, "note", "notes") + " sent in the last 7 days",
    )


def figures_line(figures: Figures) -> str:
    """The header line: 312 customers · 3 replies waiting · 5 gone quiet this month · ..."""
    return " · ".join(_figures(figures))


def digest_subject(count: int, now: datetime, tz: tzinfo) -> str:
    day = format_day(now, tz, now)
    if count == 0:
        return f"All caught up — {day}"
    return f"{_plural(count, 'person', 'people')} to write to today — {day}"


def _display(pick: Pick) -> str:
    return " ".join(pick.name.split()) or pick.contact


def _who(pick: Pick) -> str:
    """How the owner would call the customer in a sentence."""
    return first_name_of(pick.name) or _display(pick)


def _recent(pick: Pick) -> list[Touchpoint]:
    return sorted(pick.recent, key=lambda t: t.date, reverse=True)[:3]


def _touch_parts(t: Touchpoint, pick: Pick, tz: tzinfo, now: datetime) -> tuple[str, str, str]:
    """(arrow, "Tue 3 Nov · Ana: spring order", snippet) for one touchpoint."""
    inbound = t.direction == Direction.INBOUND
    arrow = "←" if inbound else "→"
    who = _who(pick) if inbound else "You"
    subject = clean_subject(t.subject) or "(no subject)"
    return arrow, f"{format_day(t.date, tz, now)} · {who}: {subject}", one_line(t.snippet, 160)


def _spark_caption(counts: Sequence[int], tz: tzinfo, now: datetime) -> str:
    """Like "Last 12 months, Dec to Nov (24 emails)"; the last count is the current month."""
    total = _plural(sum(counts), "email", "emails")
    if len(counts) != 12:
        return f"Last {len(counts)} months ({total})"
    month = now.astimezone(tz).month - 1
    return f"Last 12 months, {_MONTHS[(month + 1) % 12]} to {_MONTHS[month]} ({total})"


def _mailbot_from(owner_name: str, owner_address: str) -> Address:
    first = first_name_of(owner_name) or " ".join(owner_name.split())
    return _address(f"mailbot ({first})" if first else "mailbot", owner_address, "owner")


# --------------------------------------------------------------------------- drafts


def private_context(pick: Pick, *, token: str, subject: str, tz: tzinfo, now: datetime) -> str:
    """What the owner sees below the marker and the customer never does, ending in the canary."""
    lines = [
        PRIVATE_HEADING,
        f"To: {_display(pick)} <{pick.contact}>" if pick.name.strip() else f"To: {pick.contact}",
        f"Subject: {subject}",
        f"Why: {one_line(pick.why, 400)}",
    ]
    recent = _recent(pick)
    if recent:
        lines.append("Recent:")
        for t in recent:
            arrow, head, snippet = _touch_parts(t, pick, tz, now)
            lines.append(f"{arrow} {head}" + (f': "{snippet}"' if snippet else ""))
    if pick.monthly_counts:
        caption = _spark_caption(pick.monthly_counts, tz, now)
        lines.append(f"{caption}: {sparkline(pick.monthly_counts)}")
    lines.append(canary_for(token))
    return "\n".join(lines)


def draft_body(pick: Pick, text: str, private: str) -> str:
    """The draft email's body: MARKER first, then the draft, then the private context.

    Why the marker is at the very top: every mail client puts the owner's words above
    the quoted original (top-posting) or in a quote the client marks. Cutting the reply
    at the first occurrence of the marker therefore removes the whole quoted email,
    draft and private context alike, even in Outlook's plain top-posted quote that has
    no ``>`` prefixes; what is left above is the owner's text plus at most the client's
    quote header, which replies.py removes by mailbot's own display name, address and
    token. Had the draft text come before the marker, an Outlook-style quote would leave
    a copy of the draft above the cut, indistinguishable from the owner's own words.

    The draft text is kept verbatim (so an edit inside the quoted draft can be detected
    by comparing with the stored text) and never shares a section with the private
    context, which begins at :data:`PRIVATE_HEADING` and ends with the canary, so a
    leak of any of it into the owner's reply is caught by the leak check.
    """
    name = _display(pick)
    return (
        f"{MARKER}\n"
        f'Reply with nothing, or "yes", to send the note below to {name} as it is.\n'
        "To change it, write your own version above the line. Or reply:\n"
        "skip · snooze 2w · never · not a customer · done\n"
        "\n"
        f"{text.strip()}\n"
        "\n"
        f"{private}\n"
    )


def draft_email_subject(pick: Pick) -> str:
    newest = _recent(pick)
    topic = clean_subject(newest[0].subject) if newest else ""
    return f"Draft for {_display(pick)}: {topic or REASON_LABELS[pick.reason].lower()}"


def build_draft_email(
    pick: Pick,
    text: str,
    *,
    token: str,
    digest_message_id: str,
    owner_name: str,
    owner_address: str,
    to_address: str,
    now: datetime,
    tz: tzinfo,
    domain: str,
) -> DraftEmail:
    """One pick's draft as its own email, threaded under the digest."""
    validate_pick(pick)
    if not text.strip():
        raise InputError(f"the draft for {pick.contact!r} is empty")
    if MARKER in text or CANARY_PREFIX in text or PRIVATE_HEADING in text:
        raise InputError(f"the draft for {pick.contact!r} contains mailbot's own markers")
    subject_to_customer = note_subject(pick, owner_name)
    private = private_context(pick, token=token, subject=subject_to_customer, tz=tz, now=now)
    mid = message_id_for("draft", token, domain)
    msg = EmailMessage()
    msg["From"] = _mailbot_from(owner_name, owner_address)
    msg["To"] = _address(owner_name, to_address, "owner")
    msg["Subject"] = check_header_text(draft_email_subject(pick), "a draft subject")
    msg["Date"] = now.astimezone(tz)
    msg["Message-ID"] = f"<{mid}>"
    msg["In-Reply-To"] = f"<{digest_message_id}>"
    msg["References"] = f"<{digest_message_id}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Mailbot"] = "draft"
    msg.set_content(draft_body(pick, text, private), cte="quoted-printable")
    return DraftEmail(
        token=token,
        contact=pick.contact,
        reason=pick.reason,
        text=text.strip(),
        message_id=mid,
        message=msg,
        note_subject=subject_to_customer,
        private_context=private,
    )


# --------------------------------------------------------------------------- digest


def digest_text(
    picks: Sequence[Pick], figures: Figures, *, owner_name: str, tz: tzinfo, now: datetime
) -> str:
    first = first_name_of(owner_name) or " ".join(owner_name.split())
    hello = f"Good morning, {first}." if first else "Good morning."
    if picks:
        lead = f"{hello} {_plural(len(picks), 'person', 'people')} to write to today."
    else:
        lead = f"{hello} All caught up: nobody needs a note from you today."
    out = [lead, figures_line(figures), ""]
    for n, pick in enumerate(picks, 1):
        # No indentation: phone clients wrap long plain-text lines without a hanging indent.
        name = _display(pick)
        out.append(f"{n}. {name} <{pick.contact}>" if name != pick.contact else f"{n}. {name}")
        out.append(f"{REASON_LABELS[pick.reason]}: {one_line(pick.why, 400)}")
        for t in _recent(pick):
            arrow, head, snippet = _touch_parts(t, pick, tz, now)
            out.append(f"{arrow} {head}" + (f': "{snippet}"' if snippet else ""))
        if pick.monthly_counts:
            caption = _spark_caption(pick.monthly_counts, tz, now)
            out.append(f"{caption}: {sparkline(pick.monthly_counts)}")
        out.append(
            f"✉ Your draft to {_who(pick)} is in its own email just below: reply to it to send."
        )
        out.append("")
    out.append("--")
    out.append(_FOOTER)
    return "\n".join(out) + "\n"


_FOOTER = "mailbot, from your own mailbox to you only. Nothing was sent to any customer."
_FONT = "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
_MONO = "Menlo,Consolas,'DejaVu Sans Mono','Liberation Mono',monospace"


def _h(value: str) -> str:
    return html.escape(value, quote=True)


def _pick_html(n: int, pick: Pick, tz: tzinfo, now: datetime) -> str:
    bg, fg = _REASON_COLOURS[pick.reason]
    name = _display(pick)
    parts = [
        '<div style="background:#ffffff;border:1px solid #e2ddd3;border-radius:10px;'
        'padding:16px 16px 14px;margin:0 0 14px;">',
        f'<div style="margin:0 0 8px;"><span style="display:inline-block;background:{bg};'
        f"color:{fg};font-size:15px;line-height:1.3;font-weight:600;border-radius:999px;"
        f'padding:3px 10px;">{_h(REASON_LABELS[pick.reason])}</span></div>',
        f'<div style="font-size:19px;line-height:1.3;font-weight:700;color:#1f2328;">'
        f"{n}. {_h(name)}</div>",
    ]
    if name != pick.contact:
        parts.append(
            '<div style="font-size:15px;line-height:1.4;color:#57606a;'
            f'word-break:break-all;">{_h(pick.contact)}</div>'
        )
    parts.append(
        '<p style="font-size:17px;line-height:1.5;color:#1f2328;margin:10px 0 12px;">'
        f"{_h(one_line(pick.why, 400))}</p>"
    )
    recent = _recent(pick)
    if recent:
        parts.append(
            '<div style="border-left:3px solid #e2ddd3;padding:0 0 0 10px;margin:0 0 12px;">'
        )
        for t in recent:
            arrow, head, snippet = _touch_parts(t, pick, tz, now)
            parts.append(
                '<div style="font-size:15px;line-height:1.45;color:#3d444d;margin:0 0 6px;">'
                f'<span style="color:#8c959f;">{arrow}</span> {_h(head)}'
            )
            if snippet:
                parts.append(
                    f'<br><span style="color:#57606a;font-style:italic;">“{_h(snippet)}”</span>'
                )
            parts.append("</div>")
        parts.append("</div>")
    if pick.monthly_counts:
        parts.append(
            '<div style="font-size:15px;line-height:1.4;color:#57606a;margin:0 0 12px;">'
            f"{_h(_spark_caption(pick.monthly_counts, tz, now))}<br>"
            f'<span style="font-family:{_MONO};font-size:20px;letter-spacing:2px;'
            f'color:#2f6f4f;">{sparkline(pick.monthly_counts)}</span></div>'
        )
    parts.append(
        '<div style="font-size:15px;line-height:1.45;color:#1d5c33;background:#eef7f0;'
        'border-radius:8px;padding:9px 12px;">'
        f"✉ Your draft to {_h(_who(pick))} is in its own email just below: "
        "reply to it to send.</div>"
    )
    parts.append("</div>")
    return "\n".join(parts)


def digest_html(
    picks: Sequence[Pick],
    figures: Figures,
    *,
    subject: str,
    owner_name: str,
    tz: tzinfo,
    now: datetime,
) -> str:
    first = first_name_of(owner_name) or " ".join(owner_name.split())
    hello = f"Good morning, {first}" if first else "Good morning"
    if picks:
        lead = f"{_plural(len(picks), 'person', 'people')} to write to today."
        names = [_display(p) for p in picks]
        preheader = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    else:
        lead = "All caught up: nobody needs a note from you today."
        preheader = lead
    body = "\n".join(_pick_html(n, p, tz, now) for n, p in enumerate(picks, 1))
    # each figure stays whole when a phone wraps the line
    figures_html = " · ".join(
        f'<span style="white-space:nowrap;">{_h(f)}</span>' for f in _figures(figures)
    )
    column = (
        f"max-width:600px;margin:0 auto;padding:20px 12px 24px;font-family:{_FONT};"
        "font-size:16px;line-height:1.5;color:#1f2328;"
    )
    return "\n".join(
        (
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="color-scheme" content="light">',
            '<meta name="supported-color-schemes" content="light">',
            f"<title>{_h(subject)}</title>",
            "</head>",
            '<body style="margin:0;padding:0;background:#f6f3ee;">',
            '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all;">'
            f"{_h(preheader)}</div>",
            '<!--[if mso]><table role="presentation" width="600" align="center" cellpadding="0"'
            ' cellspacing="0" border="0"><tr><td><![endif]-->',
            f'<div style="{column}">',
            '<h1 style="font-size:24px;line-height:1.25;margin:0 0 4px;color:#1f2328;">'
            f"{_h(hello)}</h1>",
            '<p style="font-size:18px;line-height:1.4;margin:0 0 10px;color:#1f2328;">'
            f"{_h(lead)}</p>",
            f'<p style="font-size:15px;line-height:1.5;margin:0 0 18px;color:#57606a;">'
            f"{figures_html}</p>",
            body,
            '<p style="font-size:15px;line-height:1.5;margin:18px 0 0;color:#6e7781;">'
            f"{_h(_FOOTER)}</p>",
            "</div>",
            "<!--[if mso]></td></tr></table><![endif]-->",
            "</body>",
            "</html>",
            "",
        )
    )


def build_digest(
    picks: Sequence[Pick],
    drafts: Sequence[str],
    figures: Figures,
    *,
    owner_name: str,
    owner_address: str,
    to_address: str,
    now: datetime,
    tz: tzinfo,
    digest_token: str,
    draft_tokens: Sequence[str],
    domain: str,
) -> tuple[EmailMessage, list[DraftEmail]]:
    """The digest and one threaded draft email per pick (``drafts[i]`` is for ``picks[i]``).

    With no picks, the digest says "All caught up" and the list is empty. ``now`` must be
    timezone-aware. Raises InputError for line breaks in names or subjects, or a bad
    address; ValueError when the sequences differ in length or a token repeats.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not len(picks) == len(drafts) == len(draft_tokens):
        raise ValueError("picks, drafts and draft_tokens must have the same length")
    if len({digest_token, *draft_tokens}) != len(draft_tokens) + 1:
        raise ValueError("every token must be unique")
    check_header_text(owner_name, "the owner's name")
    for pick in picks:
        validate_pick(pick)
    digest_id = message_id_for("digest", digest_token, domain)
    subject = digest_subject(len(picks), now, tz)

    msg = EmailMessage()
    msg["From"] = _mailbot_from(owner_name, owner_address)
    msg["To"] = _address(owner_name, to_address, "owner")
    msg["Subject"] = subject
    msg["Date"] = now.astimezone(tz)
    msg["Message-ID"] = f"<{digest_id}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Mailbot"] = "digest"
    msg.set_content(
        digest_text(picks, figures, owner_name=owner_name, tz=tz, now=now),
        cte="quoted-printable",
    )
    msg.add_alternative(
        digest_html(picks, figures, subject=subject, owner_name=owner_name, tz=tz, now=now),
        subtype="html",
        cte="quoted-printable",
    )
    # A fixed boundary keeps the builder pure (same input, same bytes). "=_" can never
    # occur in a quoted-printable body, so it cannot collide with the content.
    msg.set_boundary(f"=_mailbot_{digest_token}")
    draft_emails = [
        build_draft_email(
            pick,
            text,
            token=token,
            digest_message_id=digest_id,
            owner_name=owner_name,
            owner_address=owner_address,
            to_address=to_address,
            now=now,
            tz=tz,
            domain=domain,
        )
        for pick, text, token in zip(picks, drafts, draft_tokens, strict=True)
    ]
    return msg, draft_emails
