"""The digest email and the draft emails threaded under it (pure builders)."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mailbot.digest import (
    CANARY_PREFIX,
    MARKER,
    PRIVATE_HEADING,
    DraftEmail,
    Figures,
    build_digest,
    message_id_for,
    new_token,
    sparkline,
)
from mailbot.errors import InputError
from mailbot.models import MAILBOT_ID_PREFIX, Direction, Pick, Reason, Touchpoint

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2025, 11, 24, 6, 30, tzinfo=UTC)  # Monday 07:30 in Berlin
FIGURES = Figures(customers=312, replies_waiting=3, gone_quiet_this_month=5, notes_sent_7d=4)


def touch(contact: str, when: datetime, subject: str, snippet: str, d: Direction) -> Touchpoint:
    return Touchpoint(
        message_id=f"{contact}-{when.timestamp()}@mail.example",
        contact=contact,
        direction=d,
        date=when,
        subject=subject,
        snippet=snippet,
        thread_key="t",
    )


def make_pick(name: str, contact: str, reason: Reason, why: str, **kw: Any) -> Pick:
    return Pick(contact=contact, name=name, reason=reason, why=why, score=1.0, **kw)


ANA = make_pick(
    "Ana Lima",
    "ana@lima.example",
    Reason.LAPSED,
    "Ana usually writes every 3 weeks; quiet for 9 (last: 'spring order'). A hello with no agenda?",
    recent=(
        touch(
            "ana@lima.example",
            datetime(2025, 9, 22, 22, 30, tzinfo=UTC),  # Tue 23 Sep in Berlin
            "Re: spring order",
            "Do you still have the blue linen napkins? My sister loved them.",
            Direction.INBOUND,
        ),
        touch(
            "ana@lima.example",
            datetime(2025, 9, 20, 9, 0, tzinfo=UTC),
            "spring order",
            "Hi Ana, here is the list you asked for.",
            Direction.OUTBOUND,
        ),
    ),
    monthly_counts=(0, 1, 2, 0, 4, 8, 2, 1, 1, 0, 0, 0),
)
TOM = make_pick(
    "Tom Baker",
    "tom@baker.example",
    Reason.UNANSWERED,
    "Tom's email from Thursday ('invoice 7731') is still unanswered (2 business days).",
    recent=(
        touch(
            "tom@baker.example",
            datetime(2025, 11, 20, 15, 0, tzinfo=UTC),
            "invoice 7731",
            "Could you resend the invoice with our VAT number on it?",
            Direction.INBOUND,
        ),
    ),
    reply_to_subject="invoice 7731",
    monthly_counts=(1,) * 12,
)
PRIYA = make_pick(
    "Priya Shah",
    "priya@shah.example",
    Reason.MILESTONE,
    "One year since Priya's first email today.",
    recent=(
        touch(
            "priya@shah.example",
            datetime(2024, 11, 24, 10, 0, tzinfo=UTC),
            "hello!",
            "Found you at the market.",
            Direction.INBOUND,
        ),
    ),
)
PICKS = (ANA, TOM, PRIYA)
DRAFTS = (
    "Hi Ana,\n\nYou came to mind today, so I wanted to say hello.\n\nOlivia",
    "Hi Tom,\n\nThank you for your email about the invoice. Here it is again.\n\nOlivia",
    "Hi Priya,\n\nA year already! Thank you for being such a lovely customer.\n\nOlivia",
)


def build(
    picks: tuple[Pick, ...] = PICKS, drafts: tuple[str, ...] = DRAFTS, **kw: Any
) -> tuple[EmailMessage, list[DraftEmail]]:
    args: dict[str, Any] = {
        "owner_name": "Olivia Owner",
        "owner_address": "olivia@linen.example",
        "to_address": "olivia@linen.example",
        "now": NOW,
        "tz": BERLIN,
        "digest_token": new_token(),
        "draft_tokens": [new_token() for _ in picks],
        "domain": "linen.example",
    }
    args.update(kw)
    return build_digest(picks, drafts, FIGURES, **args)


def parts(msg: EmailMessage) -> tuple[str, str]:
    plain = msg.get_body(("plain",))
    rich = msg.get_body(("html",))
    assert isinstance(plain, EmailMessage) and isinstance(rich, EmailMessage)
    return plain.get_content(), rich.get_content()


def reparsed(msg: EmailMessage) -> EmailMessage:
    out = email.message_from_bytes(msg.as_bytes(policy=policy.SMTP), policy=policy.default)
    assert isinstance(out, EmailMessage)
    return out


# ----------------------------------------------------------------------------- headers


def test_digest_headers() -> None:
    token = new_token()
    digest, drafts = build(digest_token=token)
    msg = reparsed(digest)
    assert msg["Subject"] == "3 people to write to today — Mon 24 Nov"
    assert msg["From"] == '"mailbot (Olivia)" <olivia@linen.example>'
    assert msg["To"] == "Olivia Owner <olivia@linen.example>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Mailbot"] == "digest"
    assert msg["Message-ID"] == f"<mailbot.digest.{token}@linen.example>"
    assert msg["Date"].datetime == NOW
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert len(drafts) == 3


def test_subject_counts_and_owner_dates() -> None:
    one, _ = build((TOM,), (DRAFTS[1],))
    assert one["Subject"] == "1 person to write to today — Mon 24 Nov"
    # 06:30 UTC on Monday is still Sunday evening in Los Angeles
    la, _ = build(tz=ZoneInfo("America/Los_Angeles"))
    assert la["Subject"].endswith("— Sun 23 Nov")


def test_empty_digest_says_all_caught_up() -> None:
    digest, drafts = build((), ())
    assert drafts == []
    assert digest["Subject"] == "All caught up — Mon 24 Nov"
    plain, rich = parts(digest)
    assert "All caught up" in plain and "All caught up" in rich
    assert "312 customers" in plain


def test_drafts_are_threaded_under_the_digest() -> None:
    digest_token = new_token()
    tokens = [new_token() for _ in PICKS]
    digest, drafts = build(digest_token=digest_token, draft_tokens=tokens)
    digest_id = digest["Message-ID"]
    for pick, text, token, draft in zip(PICKS, DRAFTS, tokens, drafts, strict=True):
        msg = reparsed(draft.message)
        assert draft.token == token and draft.contact == pick.contact
        assert draft.reason == pick.reason and draft.text == text
        assert draft.message_id == f"{MAILBOT_ID_PREFIX}draft.{token}@linen.example"
        assert msg["Message-ID"] == f"<{draft.message_id}>"
        assert msg["In-Reply-To"] == digest_id
        assert msg["References"] == digest_id
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["X-Mailbot"] == "draft"
        assert msg["From"] == '"mailbot (Olivia)" <olivia@linen.example>'
        assert msg["To"] == "Olivia Owner <olivia@linen.example>"
        assert msg.get_content_type() == "text/plain"
    assert drafts[0].message["Subject"] == "Draft for Ana Lima: spring order"
    assert drafts[1].message["Subject"] == "Draft for Tom Baker: invoice 7731"
    assert drafts[1].note_subject == "Re: invoice 7731"
    assert drafts[0].note_subject == "Hello from Olivia"


def test_tokens_are_unique_and_unguessable() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token)  # 32 x 6 bits = 192 bits
    digest, drafts = build()
    ids = [digest["Message-ID"], *(d.message["Message-ID"] for d in drafts)]
    assert len(set(ids)) == len(ids)
    with pytest.raises(ValueError, match="unique"):
        build(digest_token="A" * 32, draft_tokens=["A" * 32, "B" * 32, "C" * 32])
    with pytest.raises(ValueError, match="128 bits"):
        message_id_for("draft", "short", "linen.example")
    with pytest.raises(ValueError, match="same length"):
        build(drafts=DRAFTS[:2])
    assert message_id_for("draft", "x" * 32, "linen.example") == (
        f"mailbot.draft.{'x' * 32}@linen.example"
    )


# ------------------------------------------------------------------------------ bodies


def test_plain_text_has_figures_why_touchpoints_and_sparkline() -> None:
    plain, _ = parts(build()[0])
    assert plain.startswith("Good morning, Olivia. 3 people to write to today.\n")
    assert (
        "312 customers · 3 replies waiting · 5 gone quiet this month · "
        "4 notes sent in the last 7 days"
    ) in plain
    assert "1. Ana Lima <ana@lima.example>" in plain
    assert ANA.why in plain and TOM.why in plain
    assert "← Tue 23 Sep · Ana: spring order" in plain  # 22:30 UTC is the 23rd in Berlin
    assert "→ Sat 20 Sep · You: spring order" in plain
    assert '"Do you still have the blue linen napkins? My sister loved them."' in plain
    assert "24 Nov 2024 · Priya: hello!" in plain  # another year: the year is shown
    assert "Last 12 months, Dec to Nov (19 emails): " + sparkline(ANA.monthly_counts) in plain
    assert "Your draft to Ana is in its own email just below" in plain
    assert CANARY_PREFIX not in plain and MARKER not in plain


def test_sparkline_shape() -> None:
    assert sparkline(ANA.monthly_counts) == "▁▂▃▁▅█▃▂▂▁▁▁"
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([5] * 12) == "█" * 12
    assert sparkline([0, 1, 100]) == "▁▂█"  # any email shows above the baseline
    assert sparkline([]) == ""


def test_html_is_phone_friendly_and_self_contained() -> None:
    _, rich = parts(build()[0])
    assert "max-width:600px" in rich
    assert 'name="viewport"' in rich
    sizes = [int(s) for s in re.findall(r"font-size:(\d+)px", rich)]
    assert sizes and min(sizes) >= 15
    assert "<img" not in rich and "http" not in rich.lower()
    assert "<style" not in rich and "<script" not in rich
    assert "Ana Lima" in rich and "ana@lima.example" in rich
    assert "Ana usually writes every 3 weeks; quiet for 9 (last: &#x27;spring order&#x27;)" in rich
    assert sparkline(ANA.monthly_counts) in rich


class TagBalance(HTMLParser):
    """Fails on a closing tag that does not match the open one (void tags aside)."""

    VOID = frozenset({"meta", "br", "img", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def test_html_is_well_formed() -> None:
    for picks, drafts in ((PICKS, DRAFTS), ((), ())):
        _, rich = parts(build(picks, drafts)[0])
        checker = TagBalance()
        checker.feed(rich)
        checker.close()
        assert checker.stack == []
        figures = re.search(r"<p [^>]*>((?:<span [^>]*>[^<]+</span>(?: · )?){4})</p>", rich)
        assert figures and "312 customers" in figures.group(1)


def test_html_escapes_hostile_values() -> None:
    evil = make_pick(
        "<script>alert(1)</script>",
        "x@evil.example",
        Reason.NEGATIVE,
        'Unhappy: "<b>refund</b>" & more',
        recent=(
            touch(
                "x@evil.example",
                NOW - timedelta(days=1),
                "<img src=x onerror=alert(2)>",
                "</div><a href='http://evil.example'>click</a>",
                Direction.INBOUND,
            ),
        ),
    )
    digest, _ = build((evil,), ("Hi,\n\nSorry to hear that.\n\nOlivia",))
    _, rich = parts(digest)
    assert "<script" not in rich and "<img" not in rich and "<a " not in rich and "<b>" not in rich
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rich
    assert "&lt;/div&gt;&lt;a href=&#x27;http://evil.example&#x27;&gt;" in rich
    assert "&quot;&lt;b&gt;refund&lt;/b&gt;&quot; &amp; more" in rich


@pytest.mark.parametrize(
    "field",
    ["name", "subject", "reply_to_subject", "owner_name"],
)
def test_line_breaks_in_names_and_subjects_are_rejected(field: str) -> None:
    bad = "Ana\r\nBcc: everyone@example.com"
    pick = ANA
    kw: dict[str, Any] = {}
    if field == "name":
        pick = make_pick(bad, ANA.contact, ANA.reason, ANA.why)
    elif field == "subject":
        t = touch(ANA.contact, NOW, "spring\norder", "x", Direction.INBOUND)
        pick = make_pick(ANA.name, ANA.contact, ANA.reason, ANA.why, recent=(t,))
    elif field == "reply_to_subject":
        pick = make_pick(ANA.name, ANA.contact, ANA.reason, ANA.why, reply_to_subject="a\rb")
    else:
        kw["owner_name"] = bad
    with pytest.raises(InputError, match="line break"):
        build((pick,), (DRAFTS[0],), **kw)


def test_bad_addresses_are_input_errors() -> None:
    with pytest.raises(InputError):
        build(owner_address="not an address")


def test_draft_body_layout_marker_draft_then_private_context() -> None:
    tokens = [new_token() for _ in PICKS]
    _, drafts = build(draft_tokens=tokens)
    for pick, token, draft in zip(PICKS, tokens, drafts, strict=True):
        body = reparsed(draft.message).get_content().replace("\r\n", "\n")
        lines = body.splitlines()
        assert lines[0] == MARKER  # the very first line
        assert body.count(MARKER) == 1
        canary = f"{CANARY_PREFIX}{token}"
        assert lines[-1] == canary and body.count(CANARY_PREFIX) == 1
        above_private, heading, private = body.partition(PRIVATE_HEADING)
        assert heading
        # the draft, verbatim, between the marker and the private context
        assert f"\n\n{draft.text}\n\n" in above_private
        assert pick.why not in above_private and pick.why in private
        for t in pick.recent:
            assert t.snippet not in above_private and t.snippet in private
        assert canary not in above_private
        assert draft.private_context == PRIVATE_HEADING + private.rstrip("\n")
        assert pick.contact in private
        assert token not in draft.text


def test_draft_text_with_mailbot_markers_is_refused() -> None:
    with pytest.raises(InputError, match="markers"):
        build((ANA,), (f"Hi Ana,\n{MARKER}\nOlivia",))
    with pytest.raises(InputError, match="empty"):
        build((ANA,), ("  \n",))


def test_builders_are_pure() -> None:
    kw: dict[str, Any] = {"digest_token": "d" * 32, "draft_tokens": ["a" * 32, "b" * 32, "c" * 32]}
    first_digest, first_drafts = build(**kw)
    again_digest, again_drafts = build(**kw)
    assert first_digest.as_bytes() == again_digest.as_bytes()
    assert [d.message.as_bytes() for d in first_drafts] == [
        d.message.as_bytes() for d in again_drafts
    ]
    assert first_drafts == again_drafts


@pytest.mark.parametrize("style", ["gmail", "outlook"])
def test_cutting_a_reply_at_the_marker_drops_draft_and_private_context(style: str) -> None:
    """Why the marker is the first line: whatever the quoting style, everything mailbot
    wrote sits below the first marker in the owner's reply."""
    _, [draft] = build((ANA,), (DRAFTS[0],), draft_tokens=["t" * 32])
    body = draft.message.get_content().replace("\r\n", "\n")
    owner = "Hi Ana, the blue napkins are back in stock. Shall I put a set aside?\n\nOlivia"
    if style == "gmail":
        quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
        reply = f'{owner}\n\nOn Mon, 24 Nov 2025 at 07:30, "mailbot (Olivia)" wrote:\n{quoted}\n'
    else:  # Outlook top-posting: a header block and the original, with no ">" at all
        reply = (
            f"{owner}\n\n________________________________\n"
            "From: mailbot (Olivia) <olivia@linen.example>\nSent: Monday, 24 November 2025\n"
            f"Subject: {draft.message['Subject']}\n\n{body}"
        )
    above = reply.split(MARKER, 1)[0]
    assert above.startswith(owner)
    assert draft.text.splitlines()[2] not in above  # no copy of the draft above the cut
    assert CANARY_PREFIX not in above and ANA.why not in above
