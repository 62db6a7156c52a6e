"""Reply-to-send core (mailbot.replies): the owner's words, the leak check, commands.

The owner replies in tests/replies/*.eml were written for these tests, one per mail
client's way of quoting (see tests/replies/make_samples.py, which wrote them from the
draft built here). Each is checked for the exact words the owner typed, the doubt
flag and a clean leak check; then adversarial replies that must be doubtful.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.digest import MARKER, PRIVATE_HEADING, DraftEmail, Figures, build_digest
from mailbot.models import Direction, Pick, Reason, Touchpoint
from mailbot.replies import (
    Command,
    CommandKind,
    DraftRef,
    Extraction,
    extract,
    leak_problems,
    parse_command,
    reply_text,
    tokens_referenced,
)

REPLIES = Path(__file__).parent / "replies"
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 24, 6, 31, tzinfo=UTC)  # Tuesday 07:31 in Berlin
OWNER_NAME = "Olivia Owner"
OWNER = "olivia@linen.example"
OWNERS = (OWNER, "shop@linen.example")
DOMAIN = "linen.example"
TOKEN = "eWKhN4jm6m52GZVEOVjEb7o5pCgClsNg"
DIGEST_TOKEN = "dGhlLWRpZ2VzdC10b2tlbi0wMDAx"
DRAFT_ID = f"mailbot.draft.{TOKEN}@{DOMAIN}"
DIGEST_ID = f"mailbot.digest.{DIGEST_TOKEN}@{DOMAIN}"

DRAFT_TEXT = (
    "Hi Ana,\n\n"
    "It has been a few weeks since your spring order, and I hope the napkins found a "
    "good home.\n\n"
    "We have just unpacked a new batch of washed linen in sage and oat. If you would "
    "like a few swatches, I am happy to post them to you.\n\n"
    "Olivia"
)
WHY = (
    "Ana usually writes every 3 weeks; quiet for 9 (last: 'spring order'). A hello with no agenda?"
)


def _touch(when: datetime, subject: str, snippet: str, direction: Direction) -> Touchpoint:
    return Touchpoint(
        message_id=f"{when.timestamp():.0f}@lima.example",
        contact="ana@lima.example",
        direction=direction,
        date=when,
        subject=subject,
        snippet=snippet,
        thread_key="spring",
    )


ANA = Pick(
    contact="ana@lima.example",
    name="Ana Lima",
    reason=Reason.LAPSED,
    why=WHY,
    score=1.0,
    recent=(
        _touch(
            datetime(2026, 9, 22, 22, 30, tzinfo=UTC),
            "Re: spring order",
            "Do you still have the blue linen napkins? My sister loved them.",
            Direction.INBOUND,
        ),
        _touch(
            datetime(2026, 9, 20, 9, 0, tzinfo=UTC),
            "spring order",
            "Hi Ana, here is the list you asked for.",
            Direction.OUTBOUND,
        ),
    ),
    monthly_counts=(0, 1, 2, 0, 4, 8, 2, 1, 1, 0, 0, 0),
)


def build_draft() -> DraftEmail:
    """Ana's draft email, exactly as the morning digest sends it."""
    _digest, drafts = build_digest(
        [ANA],
        [DRAFT_TEXT],
        Figures(customers=312, replies_waiting=3, gone_quiet_this_month=5, notes_sent_7d=4),
        owner_name=OWNER_NAME,
        owner_address=OWNER,
        to_address=OWNER,
        now=NOW,
        tz=BERLIN,
        digest_token=DIGEST_TOKEN,
        draft_tokens=[TOKEN],
        domain=DOMAIN,
    )
    return drafts[0]


DRAFT = build_draft()
REF = DraftRef(
    token=DRAFT.token,
    contact=DRAFT.contact,
    contact_name=ANA.name,
    text=DRAFT.text,
    private_context=DRAFT.private_context,
    subject=str(DRAFT.message["Subject"]),
    note_subject=DRAFT.note_subject,
)
DRAFT_BODY = DRAFT.message.get_content()


def sample(name: str) -> bytes:
    return (REPLIES / name).read_bytes()


def run(body: str, draft: DraftRef = REF) -> Extraction:
    return extract(body, draft, owner_addresses=OWNERS, owner_name=OWNER_NAME)


def extract_sample(name: str) -> Extraction:
    body, _html = reply_text(sample(name))
    return run(body)


# --------------------------------------------------------------------------- the samples


@dataclass(frozen=True)
class Case:
    """What the owner typed, and what mailbot must make of it."""

    text: str
    doubtful: bool = False
    why: str = ""  # part of one of the reasons for doubt
    subject: str = ""
    kind: CommandKind = CommandKind.SEND_TEXT
    html: bool = False  # the reply has no text/plain part


CLEAN: dict[str, Case] = {
    "gmail_web_en.eml": Case(
        "Hi Ana,\n\nThe sage linen arrived this morning and I thought of you straight away. "
        "Shall I put a set of napkins aside for you?\n\nOlivia"
    ),
    "gmail_web_de.eml": Case(
        "Hallo Ana,\n\nheute ist das neue Leinen in Salbei gekommen \u2013 soll ich dir ein paar "
        "Muster schicken?\n\nLiebe Grüße\nOlivia"
    ),
    "gmail_web_fr.eml": Case(
        "Bonjour Ana,\n\nLe nouveau lin couleur sauge vient d'arriver. Voulez-vous que je "
        "vous envoie quelques échantillons ?\n\nBien à vous,\nOlivia"
    ),
    "gmail_web_es.eml": Case(
        "Hola Ana:\n\nAcaba de llegar el lino nuevo en color salvia. ¿Quieres que te mande "
        "unas muestras?\n\nUn abrazo,\nOlivia"
    ),
    "gmail_android.eml": Case(
        "Hi Ana, quick one from my phone: the oat linen is back in stock if you still want "
        "those napkins. Olivia"
    ),
    "gmail_ios.eml": Case(
        "Hi Ana,\n\nWe are restocking the blue napkins next week. Would you like me to keep "
        "six for you?\n\nBest,\nOlivia\n\n-- \nOlivia Owner\nOlivia's Linen · Berlin"
    ),
    "gmail_html_only.eml": Case(
        "Hi Ana,\n\nLovely to hear from you in spring. The oat linen is back, and I kept two "
        "aprons in your size.\n\nOlivia",
        html=True,
    ),
    "outlook_desktop_en.eml": Case(
        "Hi Ana,\n\nThank you again for your spring order. A new washed linen in sage has "
        "just come in \u2013 I think it would go beautifully with your napkins.\n\nKind regards,"
        "\nOlivia"
    ),
    "outlook_desktop_original_message.eml": Case(
        "Hi Ana,\n\nJust a short hello from the shop. We are open late on Thursday if you "
        "would like to see the new colours.\n\nOlivia"
    ),
    "outlook_desktop_de.eml": Case(
        "Hallo Ana,\n\nvielen Dank noch einmal für deine Bestellung im Frühjahr. Wir haben "
        "gerade neues Leinen in Salbei bekommen.\n\nViele Grüße\nOlivia"
    ),
    "outlook_desktop_fr.eml": Case(
        "Bonjour Ana,\n\nMerci encore pour votre commande du printemps. Le lin lavé couleur "
        "sauge vient d'arriver à la boutique.\n\nCordialement,\nOlivia"
    ),
    "outlook_desktop_html_only.eml": Case(
        "Hi Ana,\n\nYour napkins were the first thing we restocked. Would you like the oat "
        "or the sage?\n\nAll the best,\nOlivia",
        html=True,
    ),
    "outlook_web_html_only.eml": Case(
        "Hi Ana,\n\nThe sage and oat linen are both in now. I can post swatches tomorrow if "
        "you like.\n\nWarm wishes,\nOlivia",
        html=True,
    ),
    "outlook_ios.eml": Case(
        "Hi Ana, the sage linen is here! Shall I post you some swatches?\n\nOlivia"
    ),
    "samsung_email.eml": Case(
        "Hi Ana, the sage linen is in. Shall I send you a few swatches this week?\n\nOlivia"
    ),
    "apple_mail_mac.eml": Case(
        "Dear Ana,\n\nI hope you are well! Our spring linen has arrived early this year and "
        "the sage is my favourite.\n\nWarmly,\nOlivia"
    ),
    "iphone_mail.eml": Case(
        "Hi Ana, the blue napkins are back in stock. Want me to hold a set for you?"
    ),
    "iphone_mail_de.eml": Case(
        "Liebe Ana,\n\ndas neue Leinen ist da. Magst du vorbeikommen?\n\nOlivia"
    ),
    "thunderbird.eml": Case(
        "Hi Ana,\n\nthe sage linen is in, and I saved you a few swatches. Shall I post "
        "them?\n\nOlivia"
    ),
    "thunderbird_address_book_name.eml": Case(
        "Hi Ana,\n\nwe will be at the Saturday market with the new linen. Come and say "
        "hello!\n\nOlivia"
    ),
    "marker_rewrapped.eml": Case("Hi Ana, shall I put some sage linen aside for you? Olivia"),
    "subject_override.eml": Case(
        "Hi Ana,\n\nthe spring linen is in, and the sage is lovely. Shall I send you "
        "swatches?\n\nOlivia",
        subject="Spring linen is in",
    ),
    "cmd_gmail_empty.eml": Case("", kind=CommandKind.SEND_DRAFT),
    "cmd_gmail_snooze.eml": Case("Snooze 3 months", kind=CommandKind.SNOOZE),
    "cmd_iphone_yes.eml": Case("Yes", kind=CommandKind.SEND_DRAFT),
    "cmd_outlook_skip.eml": Case("skip", kind=CommandKind.SKIP),
    "cmd_outlook_de_not_customer.eml": Case("Not a customer.", kind=CommandKind.NOT_CUSTOMER),
}

DOUBTFUL: dict[str, Case] = {
    "mutt_inline.eml": Case(
        "Sure, but mention the oat colour too, Ana asked about it in spring.",
        doubtful=True,
        why="text after the quoted draft",
    ),
    "mutt_bottom_post.eml": Case(
        "Hi Ana,\n\nthe oat linen is back. Shall I keep a few metres for you?\n\nOlivia\n\n"
        "-- \nOlivia Owner · Olivia's Linen",
        doubtful=True,
        why="text after the quoted draft (bottom-posting",
    ),
    "adv_gmail_bottom_post.eml": Case(
        "Hi Ana, the oat linen is in. Shall I send swatches?\nOlivia",
        doubtful=True,
        why="text after the quoted draft (bottom-posting",
    ),
    "adv_after_outlook_copy.eml": Case(
        "PS to Ana: the shop is closed on Monday.",
        doubtful=True,
        why="text after the quoted draft",
    ),
    "adv_no_quote.eml": Case(
        "Hi Ana,\n\nThe sage linen is in, shall I send swatches?\n\nOlivia",
        doubtful=True,
        why="no marker line found in the quoted draft",
    ),
    "adv_quote_cut_short.eml": Case(
        "Hi Ana, the sage linen is in, shall I send swatches? Olivia",
        doubtful=True,
        why="the quoted draft was edited",
    ),
    "adv_edited_in_gmail_quote.eml": Case(
        "", doubtful=True, why="the quoted draft was edited", kind=CommandKind.SEND_DRAFT
    ),
    "adv_edited_in_outlook_copy.eml": Case(
        "", doubtful=True, why="the quoted draft was edited", kind=CommandKind.SEND_DRAFT
    ),
    "adv_inserted_in_outlook_copy.eml": Case(
        "", doubtful=True, why="the quoted draft was edited", kind=CommandKind.SEND_DRAFT
    ),
    "adv_pasted_why.eml": Case(
        "Hi Ana,\n\nAna usually writes every 3 weeks; quiet for 9 (last: 'spring order'). "
        "So here is a hello!\n\nOlivia",
        doubtful=True,
        why="from the private part of the draft",
    ),
    "adv_pasted_history.eml": Case(
        "Hi Ana,\n\nDo you still have the blue linen napkins? My sister loved them. We have "
        "more now.\n\nOlivia",
        doubtful=True,
        why="from the private part of the draft",
    ),
    "adv_pasted_canary.eml": Case(
        f"Hi Ana, the oat linen is in. See you soon, Olivia\nmailbot-private-{TOKEN}",
        doubtful=True,
        why="canary",
    ),
    "adv_header_without_tokens.eml": Case(
        "Bonjour Ana, le lin sauge est arrivé. Je vous envoie des échantillons ?\n\n"
        "Le 24 nov. 2026 à 07:31, Olivia a écrit :",
        doubtful=True,
        why="look like a quote header",
    ),
    "adv_header_touching_text.eml": Case(
        "Hi Ana, the oat linen is in, shall I put some aside?",
        doubtful=True,
        why="runs straight into the quote header",
    ),
    "adv_owner_quotes_a_line.eml": Case(
        "Hi Ana,\n\nYes, six of them!\n\nOlivia",
        doubtful=True,
        why='quoted with ">" above the draft were left out',
    ),
}
ALL = {**CLEAN, **DOUBTFUL}


def test_every_sample_has_an_expectation() -> None:
    on_disk = {path.name for path in REPLIES.glob("*.eml")}
    assert on_disk == set(ALL)


def test_samples_reply_to_this_draft() -> None:
    for name in ALL:
        msg = BytesParser(policy=policy.compat32).parsebytes(sample(name))
        refs = tokens_referenced(str(msg["In-Reply-To"]), [str(msg["References"])])
        assert refs[0] == ("draft", TOKEN), name


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_clean_reply_gives_exactly_the_owners_words(name: str) -> None:
    case = CLEAN[name]
    body, was_html = reply_text(sample(name))
    assert was_html == case.html
    ex = run(body)
    assert ex.text == case.text
    assert not ex.doubtful, ex.why
    assert ex.why == ()
    assert ex.subject_override == case.subject
    assert leak_problems(ex.text, REF, owner_addresses=OWNERS) == []
    assert parse_command(ex.text).kind == case.kind


@pytest.mark.parametrize("name", sorted(DOUBTFUL))
def test_doubtful_reply_is_flagged_with_its_reason(name: str) -> None:
    case = DOUBTFUL[name]
    ex = extract_sample(name)
    assert ex.text == case.text
    assert ex.doubtful
    assert any(case.why in reason for reason in ex.why), ex.why
    assert parse_command(ex.text).kind == case.kind


def _html_alternative(raw: bytes) -> str | None:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    if not msg.is_multipart():
        return None
    part = msg.get_body(("html",))
    if part is None:
        return None
    html_only = (
        b"Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        + part.get_content().encode("utf-8")
    )
    return reply_text(html_only)[0]


@pytest.mark.parametrize("name", sorted(ALL))
def test_html_alternative_gives_the_same_words(name: str) -> None:
    """Where a client sent both, reading only its HTML gives the same result."""
    body = _html_alternative(sample(name))
    if body is None:
        return
    plain = extract_sample(name)
    ex = run(body)
    assert ex.text == plain.text.replace("\n-- \n", "\n--\n")
    assert ex.doubtful == plain.doubtful


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.casefold()))


def test_no_sample_leaks_a_word_of_the_draft_or_private_context() -> None:
    """The measure: extracted words that are neither the owner's nor their client's.

    For every sample, a word of the extracted text that the owner did not type but
    the quoted draft, its instructions or its private context contain is a leak.
    """
    quoted = _words(DRAFT_BODY)
    leaking = {}
    for name, case in ALL.items():
        extra = (_words(extract_sample(name).text) - _words(case.text)) & quoted
        if extra:
            leaking[name] = extra
    assert leaking == {}
    assert len(ALL) >= 40


# --------------------------------------------------------------------------- extract, by hand

QUOTED = "\n".join(f"> {line}" if line else ">" for line in DRAFT_BODY.rstrip("\n").split("\n"))
GMAIL_HEADER = f"On Tue, 24 Nov 2026 at 07:31, mailbot (Olivia) <{OWNER}> wrote:"


def gmail_reply(own: str, header: str = GMAIL_HEADER, quoted: str = QUOTED) -> str:
    return f"{own}\n\n{header}\n\n{quoted}\n"


def outlook_reply(own: str, block: str, copy: str = DRAFT_BODY) -> str:
    return f"{own}\n\n{block}\n\n{copy}"


@pytest.mark.parametrize(
    "block",
    [
        # address-book names: only the subject is mailbot's
        "From: Olivia Owner\nSent: Tuesday, November 24, 2026 7:31 AM\nTo: Olivia Owner\n"
        f"Subject: {REF.subject}",
        # Outlook for Mac
        f"From: mailbot (Olivia) <{OWNER}>\nDate: Tuesday, 24 November 2026 at 07:31\n"
        f"To: Olivia Owner <{OWNER}>\nSubject: {REF.subject}",
        # Dutch, with Cc and Importance
        f"Van: mailbot (Olivia) <{OWNER}>\nVerzonden: dinsdag 24 november 2026 07:31\n"
        f"Aan: Olivia Owner <{OWNER}>\nCc: shop@linen.example\nOnderwerp: {REF.subject}\n"
        "Urgentie: Hoog",
        # the subject wrapped by the client
        "________________________________\nVon: Olivia Owner <olivia@linen.example>\n"
        "Gesendet: Dienstag, 24. November 2026 07:31\nAn: Olivia Owner\n"
        "Betreff: Draft for Ana\n Lima: spring order",
        # Japanese Outlook
        f"差出人: mailbot (Olivia) <{OWNER}>\n送信日時: 2026年11月24日 7:31\n"
        f"宛先: Olivia Owner <{OWNER}>\n件名: {REF.subject}",
        # Yahoo
        f"On Tuesday, 24 November 2026 at 07:31:00 CET, mailbot (Olivia) <{OWNER}> wrote:",
        # a second owner address, and the token in a header line
        f"-----Ursprüngliche Nachricht-----\nVon: shop@linen.example\nBetreff: {REF.subject}",
        f"Message-ID: <mailbot.draft.{TOKEN}@linen.example>\nFrom: someone",
    ],
)
def test_quote_headers_are_found_by_mailbots_own_tokens(block: str) -> None:
    own = "Hi Ana,\n\nthe sage linen is in.\n\nOlivia"
    ex = run(outlook_reply(own, block))
    assert ex.text == own
    assert not ex.doubtful, ex.why


def test_weak_tokens_alone_do_not_make_a_header() -> None:
    """The owner's address or name in a signature is the owner's text, not a header."""
    own = "Hi Ana, the sage linen is in.\n\nOlivia Owner\nolivia@linen.example\nTel: 030 1234"
    ex = run(f"{own}\n\n{QUOTED}\n")
    assert ex.text == own
    assert not ex.doubtful, ex.why


def test_header_with_owner_name_and_colon_is_removed() -> None:
    ex = run(gmail_reply("Hi Ana, see you Saturday!", header="On 24/11/2026, Olivia Owner wrote:"))
    assert ex.text == "Hi Ana, see you Saturday!"
    assert not ex.doubtful


def test_wrapped_attribution_without_token_on_first_line_is_doubtful() -> None:
    header = f"On Tue, 24 Nov 2026 at 07:31,\nmailbot (Olivia) <{OWNER}> wrote:"
    ex = run(gmail_reply("Hi Ana, the linen is in.", header=header))
    assert ex.doubtful
    assert "On Tue, 24 Nov 2026 at 07:31," in ex.text  # shown to the owner, never sent


def test_strange_line_inside_the_header_is_doubtful() -> None:
    block = f"From: mailbot (Olivia) <{OWNER}>\nPlease keep this one for me\nSubject: {REF.subject}"
    ex = run(outlook_reply("Hi Ana.", block))
    assert ex.doubtful
    assert any("not recognised" in reason for reason in ex.why)


def test_owner_text_between_header_and_quote_is_doubtful() -> None:
    body = f"{GMAIL_HEADER}\n\nHi Ana, I typed below the header by mistake.\n\n{QUOTED}\n"
    ex = run(body)
    assert ex.doubtful
    assert any("sender name" in reason for reason in ex.why)


def test_text_on_the_marker_line_is_doubtful() -> None:
    body = "Hi Ana, the sage is in!" + DRAFT_BODY
    ex = run(body)
    assert ex.doubtful
    assert ex.text == "Hi Ana, the sage is in!"


def test_marker_is_found_with_leading_space_nested_quotes_and_mangled_dashes() -> None:
    quoted = "\n".join(f">> {line}" for line in DRAFT_BODY.rstrip("\n").split("\n"))
    quoted = quoted.replace("───", "---", 2)
    ex = run(gmail_reply("Hi Ana, all good here.", quoted="  " + quoted))
    assert ex.text == "Hi Ana, all good here."
    assert not ex.doubtful, ex.why


def test_empty_reply_and_reply_to_nothing() -> None:
    assert run(gmail_reply("")).text == ""
    assert not run(gmail_reply("")).doubtful
    empty = run("")
    assert empty.text == "" and empty.doubtful


@pytest.mark.parametrize(
    "signature",
    [
        "Sent from my iPhone",
        "Gesendet von meinem iPhone",
        "Von meinem iPhone gesendet",
        "Envoyé de mon iPhone",
        "Enviado desde mi iPhone",
        "Sent from Outlook for Android",
        "Get Outlook for iOS<https://aka.ms/o0ukef>",
        "Get Outlook for Android",
        "Sent from my Galaxy",
        "Sent from Yahoo Mail for iPhone",
        "-- \nSent from my iPad",
    ],
)
def test_trailing_mobile_signature_is_removed(signature: str) -> None:
    ex = run(gmail_reply(f"Hi Ana, see you soon.\n\n{signature}"))
    assert ex.text == "Hi Ana, see you soon."
    assert not ex.doubtful


def test_owner_signature_is_kept() -> None:
    own = "Hi Ana, see you soon.\n\n-- \nOlivia Owner\nOlivia's Linen, Berlin"
    assert run(gmail_reply(own)).text == own


def test_subject_override() -> None:
    ex = run(gmail_reply("subject:   Spring   linen is in\nHi Ana, the linen is in. Olivia"))
    assert ex.subject_override == "Spring linen is in"
    assert ex.text == "Hi Ana, the linen is in. Olivia"
    assert not ex.doubtful
    only = run(gmail_reply("Subject: New colours"))
    assert (only.subject_override, only.text) == ("New colours", "")
    assert run(gmail_reply("Subject:\nHi Ana, hello!")).doubtful
    later = run(gmail_reply("Hi Ana,\nSubject: the linen"))
    assert later.subject_override == "" and later.text == "Hi Ana,\nSubject: the linen"


def test_owner_rewrites_the_draft_on_top() -> None:
    """Sharing words with the draft text is fine: the owner edits the draft."""
    own = DRAFT_TEXT.replace("sage and oat", "sage, oat and rust")
    ex = run(gmail_reply(own))
    assert ex.text == own
    assert not ex.doubtful, ex.why


def test_private_part_trimmed_from_the_quote_is_doubtful() -> None:
    cut = QUOTED.split("> " + PRIVATE_HEADING)[0]
    ex = run(gmail_reply("Hi Ana, the linen is in.", quoted=cut))
    assert ex.doubtful
    assert any("private part changed" in reason for reason in ex.why)


def test_rewrapped_quote_is_not_an_edit() -> None:
    """Clients re-wrap quoted lines; the comparison is by words."""
    words = DRAFT_BODY.split()
    rewrapped = "\n".join("> " + " ".join(words[i : i + 7]) for i in range(0, len(words), 7))
    ex = run(gmail_reply("Hi Ana, the linen is in.", quoted=rewrapped))
    assert ex.text == "Hi Ana, the linen is in."
    assert not ex.doubtful, ex.why


def test_reply_to_a_confirmation_request() -> None:
    from mailbot.notes import confirm_body

    note = "Hi Ana,\n\nthe sage linen is in.\n\nOlivia"
    body = confirm_body(note, "Ana Lima <ana@lima.example>", ["no marker line found"])
    confirm = DraftRef(
        token="Y29uZmlybS10b2tlbi0wMDAwMDAx",
        contact=REF.contact,
        contact_name=REF.contact_name,
        text=note,
        private_context=REF.private_context,  # what the daemon passes; not in the email
        subject="Send this to Ana Lima? Hello from Olivia",
        note_subject=REF.note_subject,
    )
    quoted = "\n".join(f"> {line}" if line else ">" for line in body.rstrip("\n").split("\n"))
    ex = run(f"yes\n\n{GMAIL_HEADER}\n\n{quoted}\n", confirm)
    assert (ex.text, ex.doubtful) == ("yes", False), ex.why
    assert parse_command(ex.text).kind == CommandKind.SEND_DRAFT


def test_extract_never_raises_on_odd_input() -> None:
    for body in ("\x00\x01", "> " * 10_000, MARKER, MARKER * 3, "\r\n" * 50, "─" * 5000):
        ex = run(body)
        assert isinstance(ex.text, str)
    big = "Hi Ana.\n\n" + GMAIL_HEADER + "\n\n" + QUOTED + ("\n> filler " * 60_000)
    ex = run(big)
    assert ex.text == "Hi Ana." and ex.doubtful  # the quote holds more than the draft


# --------------------------------------------------------------------------- leak check


def leaks(text: str, **kw: object) -> list[str]:
    return leak_problems(text, REF, owner_addresses=OWNERS, **kw)  # type: ignore[arg-type]


def test_no_leak_in_ordinary_notes() -> None:
    assert leaks("") == []
    assert leaks(DRAFT_TEXT) == []  # the draft itself is meant to be sent
    assert leaks("Hi Ana, it has been a few weeks since your spring order. Olivia") == []
    assert leaks("Write to me any time: olivia@linen.example\nOlivia") == []
    assert leaks("Hi Ana, your sister loved the napkins? Wonderful!") == []  # < 5 words shared


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Hi Ana, USUALLY writes... every 3 weeks! Olivia", "from the private part"),
        ("Thanks — Ana usually writes every 3 weeks", "from the private part"),
        ("Hi Ana,\n→ Sun 20 Sep · You: spring order", "private"),
        ("Hi Ana, I used the subject: Hello from Olivia", "private line"),
        ("Hi Ana, look: ▁▂▃▁▅█ what a year", "sparkline"),
        (f"Hi Ana {TOKEN}", "secret token"),
        ("Hi Ana\nmailbot-private-xyz", "canary"),
        ("Hi Ana <mailbot.draft.abcdefghijklmnopqrstuv@linen.example>", "message id"),
        ("Hi Ana\n" + MARKER, "mailbot's own words"),
        ("Hi Ana\n" + PRIVATE_HEADING, "mailbot's own words"),
        ("Hi Ana\nTo change it, write your own version above the line.", "mailbot's own words"),
        ("Hi Ana\nskip · snooze 2w · never · not a customer · done", "mailbot's own words"),
        ("Hi Ana\nmailbot (Olivia) said hello", "sender name"),
        (f"Hi Ana\n{REF.subject}", "subject"),
        (f"Hi Ana\nOn Tuesday, Olivia <{OWNER}> wrote:", "quote header"),
        ("Hi Ana\nolivia@linen.example schrieb:", "quote header"),
    ],
)
def test_leaks_are_found(text: str, reason: str) -> None:
    problems = leaks(text)
    assert any(reason in problem for problem in problems), problems


def test_runs_shared_by_draft_and_private_context_are_allowed() -> None:
    draft = DraftRef(
        token=TOKEN,
        contact=REF.contact,
        contact_name="Ana Lima",
        text="Hi Ana, do you still have the blue linen napkins? Olivia",
        private_context=REF.private_context,
        subject=REF.subject,
        note_subject=REF.note_subject,
    )
    text = "Hi Ana, do you still have the blue linen napkins, or shall I send more?"
    assert leak_problems(text, draft, owner_addresses=OWNERS) == []
    pasted = "Hi Ana, do you still have the blue linen napkins? My sister loved them."
    assert leak_problems(pasted, draft, owner_addresses=OWNERS)


def test_extra_markers() -> None:
    assert leaks("Hi Ana, reply-to-send ahoy", mailbot_markers=["reply-to-send"])
    assert leaks("Hi Ana", mailbot_markers=["reply-to-send", "  "]) == []


# --------------------------------------------------------------------------- commands


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Command(CommandKind.SEND_DRAFT, note="empty reply")),
        ("  \n\n ", Command(CommandKind.SEND_DRAFT, note="empty reply")),
        ("send", Command(CommandKind.SEND_DRAFT, note="send")),
        ("Yes!", Command(CommandKind.SEND_DRAFT, note="yes")),
        ('"yes"', Command(CommandKind.SEND_DRAFT, note="yes")),
        ("OK.", Command(CommandKind.SEND_DRAFT, note="ok")),
        ("okay", Command(CommandKind.SEND_DRAFT, note="okay")),
        ("Y", Command(CommandKind.SEND_DRAFT, note="y")),
        ("👍", Command(CommandKind.SEND_DRAFT, note="👍")),
        ("👍🏽", Command(CommandKind.SEND_DRAFT, note="👍")),
        ("Ja", Command(CommandKind.SEND_DRAFT, note="ja")),
        ("yes\n\n-- \nOlivia Owner\nOlivia's Linen", Command(CommandKind.SEND_DRAFT, note="yes")),
        ("skip", Command(CommandKind.SKIP, note="skip")),
        ("Überspringen", Command(CommandKind.SKIP, note="überspringen")),
        ("snooze", Command(CommandKind.SNOOZE, days=14, note="snooze (2 weeks)")),
        ("Snooze 2w", Command(CommandKind.SNOOZE, days=14, note="snooze 14 days")),
        ("snooze 10 days", Command(CommandKind.SNOOZE, days=10, note="snooze 10 days")),
        ("snooze 10d", Command(CommandKind.SNOOZE, days=10, note="snooze 10 days")),
        ("snooze 3 months.", Command(CommandKind.SNOOZE, days=90, note="snooze 90 days")),
        ("snooze 1m", Command(CommandKind.SNOOZE, days=30, note="snooze 30 days")),
        ("snooze for a week", Command(CommandKind.SNOOZE, days=7, note="snooze 7 days")),
        ("snooze 2 years", Command(CommandKind.SNOOZE, days=365, note="snooze 365 days")),
        ("snooze 400d", Command(CommandKind.SNOOZE, days=365, note="snooze 365 days")),
        ("never", Command(CommandKind.NEVER, note="never")),
        ("Nie", Command(CommandKind.NEVER, note="nie")),
        ("not a customer", Command(CommandKind.NOT_CUSTOMER, note="not a customer")),
        ("Kein Kunde", Command(CommandKind.NOT_CUSTOMER, note="kein kunde")),
        ("Done.", Command(CommandKind.DONE, note="done")),
        ("erledigt", Command(CommandKind.DONE, note="erledigt")),
        ("undo", Command(CommandKind.UNDO, note="undo")),
        ("Send anyway", Command(CommandKind.SEND_ANYWAY, note="send anyway")),
    ],
)
def test_commands(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "maybe",
        "later?",
        "hmm",
        "No",
        "not now",
        "Thanks!",
        "Happy birthday Ana!",
        "snooze 2",
        "snooze 0d",
        "snooze until friday",
        "skip this one please",
        "yes but change the greeting",
        "yes\nand add the oat colour",
        "ok\n\nOlivia Owner\nOlivia's Linen",
    ],
)
def test_short_or_unclear_replies_are_asked_about(text: str) -> None:
    command = parse_command(text)
    assert command.kind == CommandKind.UNKNOWN
    assert command.note
    assert command.text


def test_longer_text_is_the_note() -> None:
    text = "Hi Ana,\n\nthe sage linen is in. Shall I send swatches?\n\nOlivia"
    assert parse_command(text) == Command(CommandKind.SEND_TEXT, text=text)
    # a command word first and under nine words: asked about, in case it was a command
    assert parse_command("Done! Your order left the shop today, Ana.").kind == CommandKind.UNKNOWN
    longer = "Done! Your order left the shop today, Ana, and should arrive Friday."
    assert parse_command(longer) == Command(CommandKind.SEND_TEXT, text=longer)
    assert CommandKind.YES not in {parse_command(t).kind for t in ("yes", "Yes.", "y", "ok")}


# --------------------------------------------------------------------------- references


def test_tokens_referenced_nearest_first() -> None:
    confirm = "Y29uZmlybS10b2tlbi0wMDAwMDAx"
    refs = tokens_referenced(
        f"<mailbot.confirm.{confirm}@linen.example>",
        [f"<{DIGEST_ID}> <{DRAFT_ID}>", "<CAK7qZ1x@mail.gmail.com>", f"<{DRAFT_ID}>"],
    )
    assert refs == [("confirm", confirm), ("draft", TOKEN), ("digest", DIGEST_TOKEN)]


@pytest.mark.parametrize(
    ("in_reply_to", "references", "expected"),
    [
        ("", [], []),
        (DRAFT_ID, [], [("draft", TOKEN)]),  # without brackets
        (f"<{DRAFT_ID}> (Olivia's message)", [], [("draft", TOKEN)]),
        ("", [f"<{DIGEST_ID}>", f"<{DRAFT_ID}>"], [("draft", TOKEN), ("digest", DIGEST_TOKEN)]),
        ("<mailbot.draft.short@linen.example>", [], []),  # under 128 bits: not ours
        (f"<xmailbot.draft.{TOKEN}@linen.example>", [], []),
        (f"<mailbot.draft.{TOKEN}>", [], []),  # no domain
        (f"<mailbot.Draft.{TOKEN}@linen.example>", [], []),
        (f"<mailbot.draft.{TOKEN}!@linen.example>", [], []),
    ],
)
def test_tokens_referenced_shapes(
    in_reply_to: str, references: list[str], expected: list[tuple[str, str]]
) -> None:
    assert tokens_referenced(in_reply_to, references) == expected


# --------------------------------------------------------------------------- reply_text


def test_reply_text_prefers_plain_and_unflows() -> None:
    raw = (
        b"Content-Type: multipart/alternative; boundary=b\n\n--b\n"
        b"Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes\n\n"
        b"Hi Ana, the sage linen is in and I th \r\nought of you.\n\n> a quoted  \n> line\n"
        b"--b\nContent-Type: text/html\n\n<p>other</p>\n--b--\n"
    )
    text, was_html = reply_text(raw)
    assert not was_html
    assert text == "Hi Ana, the sage linen is in and I thought of you.\n\n> a quoted line"


def test_reply_text_html_quotes_blockquotes_and_quote_starts() -> None:
    raw = (
        b"Content-Type: text/html; charset=windows-1252\nContent-Transfer-Encoding: "
        b'quoted-printable\n\n<div>Gr=FC=DFe, Ana</div><div class=3D"gmail_quote">'
        b"On ... wrote:<blockquote>quoted</blockquote></div>"
    )
    assert reply_text(raw) == ("Grüße, Ana\n\n> On ... wrote:\n>\n> > quoted\n>", True)


def test_reply_text_skips_attachments_and_attached_messages() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: text/plain\n\n"
        b"Hi Ana\n--m\nContent-Type: text/plain; name=notes.txt\n"
        b"Content-Disposition: attachment; filename=notes.txt\n\nsecret notes\n"
        b"--m\nContent-Type: message/rfc822\n\nSubject: old\n\nold mail\n--m--\n"
    )
    assert reply_text(raw) == ("Hi Ana", False)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe\x00garbage",
        b"Content-Type: multipart/mixed; boundary=nope\n\nno parts at all",
        b"Content-Type: text/plain; charset=x-unknown-42\n\nhello \xe9",
        b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGVsbG8gQW5h!!!",
        b"Content-Type: image/png\n\n\x89PNG",
        b"Content-Type: multipart/alternative; boundary=a\n\n"
        + b"--a\nContent-Type: multipart/alternative; boundary=a\n\n" * 200,
    ],
)
def test_reply_text_never_raises(raw: bytes) -> None:
    text, was_html = reply_text(raw)
    assert isinstance(text, str) and isinstance(was_html, bool)


def test_reply_to_the_owners_own_earlier_reply() -> None:
    """The earlier reply's attribution (address-book name, no address) is a header too."""
    nested = "\n".join(f"> {line}" for line in QUOTED.split("\n"))
    body = (
        "Hi Ana, one more thing: we open at ten on Saturday.\n\n"
        "On 24/11/2026 08:10, Olivia Owner wrote:\n> Hi Ana, the sage linen is in.\n>\n"
        f"> On 24/11/2026 07:31, mailbot (Olivia) wrote:\n{nested}\n"
    )
    ex = run(body)
    assert ex.text == "Hi Ana, one more thing: we open at ten on Saturday."
    assert not ex.doubtful, ex.why


def test_draft_record_without_private_context() -> None:
    """A caller that lost the private context still gets the quote checked, heading to canary."""
    bare = DraftRef(
        token=TOKEN,
        contact=REF.contact,
        contact_name=REF.contact_name,
        text=REF.text,
        private_context="",
        subject=REF.subject,
        note_subject=REF.note_subject,
    )
    own = "Hi Ana, the sage linen is in."
    for body in (gmail_reply(own), outlook_reply(own, f"From: mailbot (Olivia) <{OWNER}>")):
        ex = run(body, bare)
        assert (ex.text, ex.doubtful) == (own, False), ex.why
    tail = outlook_reply(own, f"From: mailbot (Olivia) <{OWNER}>") + "\nPS: see you!\n"
    assert run(tail, bare).text == own + "\n\nPS: see you!"
    assert run(tail, bare).doubtful


def test_quote_without_marker_is_doubtful_but_header_still_goes() -> None:
    quoted = QUOTED.split("\n", 1)[1]  # the client dropped the marker line
    ex = run(gmail_reply("Hi Ana, the sage linen is in.", quoted=quoted))
    assert ex.text == "Hi Ana, the sage linen is in."
    assert ex.doubtful


def test_lossy_charset_marker() -> None:
    """A client that could not encode the rules sends "?" instead; the marker still counts."""
    body = DRAFT_BODY.replace("─", "?").replace("·", "?")
    ex = run(outlook_reply("Hi Ana, the sage is in.", f"From: mailbot (Olivia) <{OWNER}>", body))
    assert ex.text == "Hi Ana, the sage is in."
    assert ex.doubtful  # the instruction lines no longer match: asked, not sent
    assert any("edited" in reason for reason in ex.why)


def test_subject_line_is_leak_checked_too() -> None:
    ex = run(gmail_reply(f"Subject: {REF.subject}\n\nHi Ana, the linen is in."))
    assert ex.subject_override == REF.subject
    assert ex.doubtful
    assert any(reason.startswith("in the Subject line") for reason in ex.why)


# --------------------------------------------------------------- every change below the marker


def _below_marker(body: str) -> tuple[list[str], list[int]]:
    """The body's lines, and the indexes of the lines after the marker that hold words."""
    lines = body.split("\n")
    start = next(i for i, line in enumerate(lines) if "· mailbot ───" in line)
    return lines, [i for i in range(start + 1, len(lines)) if re.search(r"\w", lines[i])]


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_any_line_added_or_removed_below_the_marker_is_doubtful(name: str) -> None:
    """Whatever the owner (or a client) changes in the quoted draft, mailbot asks."""
    body, _html = reply_text(sample(name))
    lines, indexes = _below_marker(body)
    assert indexes
    for i in indexes:
        removed = run("\n".join(lines[:i] + lines[i + 1 :]))
        assert removed.doubtful, (name, "removed", lines[i])
        for added in ("Please also mention the rust colour.", "> Please mention rust."):
            changed = run("\n".join([*lines[:i], added, *lines[i:]]))
            assert changed.doubtful, (name, "added before", lines[i])
        edited = run("\n".join([*lines[:i], lines[i] + " rust", *lines[i + 1 :]]))
        assert edited.doubtful, (name, "edited", lines[i])
    appended = run(body + "\n\nPS: the rust one too.")
    assert appended.doubtful and appended.text.endswith("PS: the rust one too.")
