"""Unit tests for mailbot.classify: categories, reasons, direction, contacts, opt-out."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.classify import (
    Identity,
    classify,
    detect_negative,
    detect_opt_out,
    is_automated_address,
)
from mailbot.models import Category, Classification, Direction, Mailbox, Message
from mailbot.parse import parse_headers, parse_message

SAMPLES = Path(__file__).parent / "samples"

OWNER = Identity(
    owner_addresses=frozenset({"olivia@linen.example", "hello@linen.example"}),
    internal_domains=frozenset({"linen.example"}),
    owner_name="Olivia Owner",
)

C, A, B, BO, INT, CMD = (
    Category.CUSTOMER,
    Category.AUTOMATED,
    Category.BULK,
    Category.BOUNCE,
    Category.INTERNAL,
    Category.COMMAND,
)
IN, OUT = Direction.INBOUND, Direction.OUTBOUND


def classify_sample(name: str) -> Classification:
    return classify(parse_message((SAMPLES / name).read_bytes()), OWNER)


# name, category, reason contains, direction, contact addresses, opt_out
SAMPLE_CASES = [
    ("gmail_reply.eml", C, "person writing", IN, ["anna.schmidt@gmail.example"], False),
    ("outlook_desktop.eml", C, "person writing", IN, ["john@carter-sons.example"], False),
    ("outlook_web_html_only.eml", C, "person", IN, ["priya@patel-interiors.example"], False),
    ("apple_mail.eml", C, "person", IN, ["claire.dubois@icloud.example"], False),
    ("iphone.eml", C, "person", IN, ["tom.baker@me.example"], False),
    ("thunderbird_bottom_post.eml", C, "person", IN, ["peter@novak-design.example"], False),
    ("android_samsung.eml", C, "person", IN, ["maria.rossi@libero.example"], False),
    ("html_only.eml", C, "person", IN, ["grace.okafor@yahoo.example"], False),
    ("iso2022jp.eml", C, "person", IN, ["hanako.tanaka@example.jp"], False),
    ("windows1252_labelled_utf8.eml", C, "person", IN, ["helene.martin@orange.example"], False),
    ("broken_multipart_no_end.eml", C, "person", IN, ["sam@lee-bakery.example"], False),
    ("broken_multipart_wrong_boundary.eml", C, "person", IN, ["noor@atelier-noor.example"], False),
    ("missing_message_id.eml", C, "person", IN, ["oldclient@hotmail.example"], False),
    ("german_gmx.eml", C, "person", IN, ["lena.fischer@gmx.example"], False),
    ("german_apple.eml", C, "person", IN, ["j.wagner@t-online.example"], False),
    ("french_gmail.eml", C, "person", IN, ["luc.bernard@free.example"], True),
    ("spanish_gmail.eml", C, "person", IN, ["carmen.lopez@telefonica.example"], False),
    ("dutch_outlook.eml", C, "person", IN, ["sanne@bakker-bloemen.example"], False),
    ("customer_opt_out.eml", C, "person", IN, ["rob.miller@outlook.example"], True),
    ("customer_quoted_unsubscribe.eml", C, "person", IN, ["kate@kates-cafe.example"], False),
    ("customer_forward.eml", C, "person", IN, ["anna.schmidt@gmail.example"], False),
    ("base64_errors.eml", C, "person", IN, ["ingrid@fjord.example"], False),
    ("missing_content_type.eml", C, "person", IN, ["zoe@zoe-studio.example"], False),
    ("unknown_charset.eml", C, "person", IN, ["yuki@studio-yuki.example"], False),
    ("utf7.eml", C, "person", IN, ["old@legacy-mailer.example"], False),
    ("with_attachments.eml", C, "person", IN, ["arch@plans.example"], False),
    ("newsletter_list_id.eml", B, "List-Id header present", IN, [], False),
    ("mailchimp.eml", B, "List-Id header present", IN, [], False),
    ("promo_list_unsubscribe_only.eml", B, "List-Unsubscribe header present", IN, [], False),
    (
        "exchange_autoreply.eml",
        A,
        "X-Auto-Response-Suppress with auto-reply subject",
        IN,
        [],
        False,
    ),
    ("vacation_auto_submitted.eml", A, "Auto-Submitted: auto-replied", IN, [], False),
    ("german_abwesenheit.eml", A, "X-Autoreply header present", IN, [], False),
    ("noreply_notification.eml", A, "no-reply sender no-reply@shopplatform.example", IN, [], False),
    ("read_receipt.eml", A, "read receipt", IN, [], False),
    ("bounce_postfix.eml", BO, "delivery status report", IN, [], False),
    ("bounce_exim.eml", BO, "null return path from mailer-daemon@mail.host.example", IN, [], False),
    ("internal_inbound.eml", INT, "from internal domain linen.example", IN, [], False),
    ("owner_to_colleague.eml", INT, "from the owner to an internal domain", OUT, [], False),
    ("owner_command_reply.eml", CMD, "reply to a mailbot draft", OUT, [], False),
    (
        "owner_to_customer.eml",
        C,
        "from the owner to a customer",
        OUT,
        ["anna.schmidt@gmail.example"],
        False,
    ),
    ("mailbot_digest.eml", INT, "mailbot's own digest to the owner", OUT, [], False),
    (
        "mailbot_note.eml",
        C,
        "mailbot note to a customer",
        OUT,
        ["anna.schmidt@gmail.example"],
        False,
    ),
]


def test_every_sample_has_a_case() -> None:
    assert {case[0] for case in SAMPLE_CASES} == {p.name for p in SAMPLES.glob("*.eml")}


@pytest.mark.parametrize(
    ("name", "category", "reason", "direction", "contacts", "opt_out"), SAMPLE_CASES
)
def test_sample_classification(
    name: str,
    category: Category,
    reason: str,
    direction: Direction,
    contacts: list[str],
    opt_out: bool,
) -> None:
    result = classify_sample(name)
    assert result.category == category
    assert reason in result.reason
    assert result.direction == direction
    assert [box.address for box in result.contacts] == contacts
    assert result.opt_out is opt_out


def test_inbound_customer_contact_keeps_the_display_name() -> None:
    result = classify_sample("gmail_reply.eml")
    assert result.contacts == (Mailbox("anna.schmidt@gmail.example", "Anna Schmidt"),)


def test_header_only_classification_matches_full() -> None:
    """The IMAP adapter classifies from headers alone; only opt-out needs the text."""
    for name, category, *_ in SAMPLE_CASES:
        raw = (SAMPLES / name).read_bytes()
        assert classify(parse_headers(raw), OWNER).category == category, name


# --------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------


def test_identity_is_normalised() -> None:
    identity = Identity(frozenset({" Olivia@Linen.Example "}), frozenset({"@Linen.Example."}))
    assert identity.owner_addresses == frozenset({"olivia@linen.example"})
    assert identity.internal_domains == frozenset({"linen.example"})
    assert identity.is_owner("OLIVIA@linen.example")
    assert identity.is_owner("olivia+shop@linen.example")  # plus addressing
    assert not identity.is_owner("olivia2@linen.example")
    assert identity.is_internal("ben@shop.linen.example")
    assert not identity.is_internal("ben@notlinen.example")


# --------------------------------------------------------------------------
# Header-level cues
# --------------------------------------------------------------------------


def msg(*lines: str, text: str = "") -> Message:
    parsed = parse_headers(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
    if text:
        from dataclasses import replace

        parsed = replace(parsed, text=text)
    return parsed


CUSTOMER_FROM = "From: Anna <anna@customer.example>"
TO_OWNER = "To: olivia@linen.example"


@pytest.mark.parametrize(
    ("extra", "category", "reason"),
    [
        (["Auto-Submitted: auto-generated"], A, "Auto-Submitted: auto-generated"),
        (
            ["Auto-Submitted: auto-replied; owner-email=anna@customer.example"],
            A,
            "Auto-Submitted: auto-replied",
        ),
        (["Auto-Submitted: no"], C, "person"),
        (["X-Autorespond: yes"], A, "X-Autorespond header present"),
        (["Precedence: auto_reply"], A, "Precedence: auto_reply"),
        (["Precedence: bulk"], B, "Precedence: bulk"),
        (["Precedence: list"], B, "Precedence: list"),
        (["Precedence: junk"], B, "Precedence: junk"),
        (["List-Id: <team.lists.example>"], B, "List-Id header present"),
        (["List-Unsubscribe: <mailto:u@x.example>"], B, "List-Unsubscribe header present"),
        (["Return-Path: <>"], A, "null return path"),
        (["X-Auto-Response-Suppress: All"], C, "person"),  # alone it proves nothing
        (["Subject: Re: Automatic reply: your order"], C, "person"),  # a person quoting one
        (["Subject: Out of office furniture"], C, "person"),
        (
            ["Content-Type: multipart/report; report-type=delivery-status"],
            BO,
            "delivery status report",
        ),
    ],
)
def test_header_cues(extra: list[str], category: Category, reason: str) -> None:
    result = classify(msg(CUSTOMER_FROM, TO_OWNER, *extra), OWNER)
    assert result.category == category
    assert reason in result.reason


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Your order",
        "Out of Office: Re: Invoice",
        "Out of office",
        "Abwesenheitsnotiz: Ihre Bestellung",
        "Automatische Antwort: Rechnung",
        "Réponse automatique : Votre commande",
        "Respuesta automática: Pedido",
        "Risposta automatica: Ordine",
        "Afwezig: Levering",
        "Automatisch antwoord: Levering",
        "自動応答: ご注文",
        "AutoReply: order",
    ],
)
def test_out_of_office_subjects(subject: str) -> None:
    plain = classify(msg(CUSTOMER_FROM, TO_OWNER, f"Subject: {subject}"), OWNER)
    assert plain.category == A
    assert plain.reason.startswith("auto-reply subject")
    suppressed = classify(
        msg(CUSTOMER_FROM, TO_OWNER, f"Subject: {subject}", "X-Auto-Response-Suppress: All"),
        OWNER,
    )
    assert suppressed.category == A
    assert "X-Auto-Response-Suppress" in suppressed.reason


@pytest.mark.parametrize(
    "address",
    [
        "noreply@shop.example",
        "no-reply@shop.example",
        "no_reply@shop.example",
        "do-not-reply@bank.example",
        "donotreply@bank.example",
        "noreply+orders@shop.example",
        "shop-noreply@shop.example",
        "notifications@github.example",
        "notification@service.example",
        "mailer-daemon@mx.example",
        "postmaster@mx.example",
    ],
)
def test_automated_senders(address: str) -> None:
    assert is_automated_address(address)
    result = classify(msg(f"From: Someone <{address}>", TO_OWNER, "Subject: Hello"), OWNER)
    assert result.category == A
    assert address in result.reason


@pytest.mark.parametrize(
    "address",
    [
        "info@bakery.example",
        "support@shop.example",
        "hello@cafe.example",
        "orders@mill.example",
        "norbert@reply.example",
        "replyguy@x.example",
    ],
)
def test_ordinary_business_addresses_are_customers(address: str) -> None:
    assert not is_automated_address(address)
    result = classify(msg(f"From: <{address}>", TO_OWNER, "Subject: Hello"), OWNER)
    assert result.category == C
    assert result.contacts == (Mailbox(address),)


def test_no_reply_reason_wording() -> None:
    result = classify(msg("From: Shop <noreply@shop.example>", TO_OWNER), OWNER)
    assert result.reason == "no-reply sender noreply@shop.example"


def test_missing_from_is_automated() -> None:
    result = classify(msg(TO_OWNER, "Subject: ?"), OWNER)
    assert result.category == A
    assert result.reason == "no From address"


# --------------------------------------------------------------------------
# Bounces
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (
            [
                "From: Mail Delivery Subsystem <mailer-daemon@googlemail.example>",
                "Subject: Delivery Status Notification (Failure)",
                "Return-Path: <>",
                "Content-Type: multipart/report; report-type=delivery-status; boundary=x",
            ],
            "delivery status report",
        ),
        (
            [
                "From: postmaster@outlook.example",
                "Subject: Undeliverable: Your order",
                "Return-Path: <>",
            ],
            "null return path from postmaster@outlook.example",
        ),
        (["From: MAILER-DAEMON@mx.example", "Return-Path: <>", "Subject: x"], "null return path"),
        (
            [
                "From: Mail System <mailsystem@host.example>",
                "Subject: Undelivered Mail Returned to Sender",
            ],
            "delivery failure subject",
        ),
        (
            [
                "From: System Administrator <admin@corp.example>",
                "Subject: Unzustellbar: Ihre Bestellung",
            ],
            "delivery failure subject",
        ),
    ],
)
def test_bounce_cues(lines: list[str], reason: str) -> None:
    result = classify(msg(*lines, TO_OWNER), OWNER)
    assert result.category == BO
    assert reason in result.reason


def test_delay_notice_is_automated_not_bounce() -> None:
    result = classify(
        msg(
            "From: mailer-daemon@googlemail.example",
            "Subject: Delivery Status Notification (Delay)",
            TO_OWNER,
        ),
        OWNER,
    )
    assert result.category == A
    assert "delay" in result.reason


def test_read_receipt_is_not_a_bounce() -> None:
    result = classify(
        msg(
            CUSTOMER_FROM,
            TO_OWNER,
            "Subject: Gelesen: Ihre Bestellung",
            "Return-Path: <>",
            "Content-Type: multipart/report; report-type=disposition-notification",
        ),
        OWNER,
    )
    assert result.category == A
    assert "read receipt" in result.reason


def test_exchange_ooo_with_null_return_path_is_automated_not_bounce() -> None:
    result = classify(
        msg(
            CUSTOMER_FROM,
            TO_OWNER,
            "Return-Path: <>",
            "Subject: Automatic reply: Invoice",
            "X-Auto-Response-Suppress: All",
        ),
        OWNER,
    )
    assert result.category == A


# --------------------------------------------------------------------------
# Owner, commands, mailbot's own mail
# --------------------------------------------------------------------------

OWNER_FROM = "From: Olivia Owner <olivia@linen.example>"
DRAFT = "mailbot.draft.Zq3xT0kenAbCdEfGhIjKlMnOpQr@linen.example"


@pytest.mark.parametrize(
    "lines",
    [
        [f"In-Reply-To: <{DRAFT}>"],
        [f"References: <CAold@mail.example> <{DRAFT}>"],
        [f"In-Reply-To: <{DRAFT}>", "To: mailbot@linen.example"],
    ],
)
def test_owner_reply_to_a_draft_is_a_command(lines: list[str]) -> None:
    result = classify(msg(OWNER_FROM, "To: olivia@linen.example", *lines), OWNER)
    assert result.category == CMD
    assert result.reason == "reply to a mailbot draft"
    assert result.direction == OUT
    assert result.contacts == ()


def test_reply_to_the_digest_is_a_command() -> None:
    result = classify(
        msg(
            "From: hello@linen.example",
            "To: olivia@linen.example",
            "In-Reply-To: <mailbot.digest.2025-03-18.k9Lm@linen.example>",
        ),
        OWNER,
    )
    assert result.category == CMD
    assert result.reason == "reply to a mailbot digest"


def test_customer_replying_to_a_mailbot_note_is_a_customer_not_a_command() -> None:
    result = classify(
        msg(
            CUSTOMER_FROM,
            TO_OWNER,
            "In-Reply-To: <mailbot.note.Zq3xT0kenAbCdEfGhIjKlMnOpQr@linen.example>",
        ),
        OWNER,
    )
    assert result.category == C
    assert result.direction == IN


def test_spoofed_owner_address_is_not_checked_here_but_stranger_is_no_command() -> None:
    # Only the From address decides here; replies.py checks the Sent folder.
    result = classify(
        msg("From: attacker@evil.example", TO_OWNER, f"In-Reply-To: <{DRAFT}>"), OWNER
    )
    assert result.category == C


def test_owner_out_of_office_to_a_draft_is_automated_not_command() -> None:
    result = classify(
        msg(
            OWNER_FROM,
            "To: olivia@linen.example",
            f"In-Reply-To: <{DRAFT}>",
            "Auto-Submitted: auto-replied",
            "Subject: Automatic reply: Draft for Anna",
        ),
        OWNER,
    )
    assert result.category == A


def test_mailbot_question_to_the_owner_is_internal_not_command() -> None:
    result = classify(
        msg(
            OWNER_FROM,
            "To: olivia@linen.example",
            "Message-ID: <mailbot.question.abc@linen.example>",
            f"In-Reply-To: <{DRAFT}>",
        ),
        OWNER,
    )
    assert result.category == INT
    assert result.reason == "mailbot's own question to the owner"


def test_outbound_contacts_exclude_owner_internal_and_automated() -> None:
    result = classify(
        msg(
            OWNER_FROM,
            "To: Anna <Anna@Customer.example>, Ben <ben@linen.example>",
            "Cc: hello@linen.example, noreply@shop.example, Carl <carl@other.example>, "
            "anna@customer.example",
        ),
        OWNER,
    )
    assert result.category == C
    assert result.direction == OUT
    assert result.contacts == (
        Mailbox("anna@customer.example", "Anna"),
        Mailbox("carl@other.example", "Carl"),
    )
    assert result.opt_out is False


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (["To: olivia@linen.example"], "from the owner to the owner's own address"),
        (
            ["To: ben@linen.example", "Cc: hello@linen.example"],
            "from the owner to an internal domain",
        ),
        (["To: noreply@shop.example"], "from the owner to automated addresses only"),
        ([], "from the owner with no visible recipients"),
    ],
)
def test_outbound_without_customers_is_internal(lines: list[str], reason: str) -> None:
    result = classify(msg(OWNER_FROM, *lines), OWNER)
    assert result.category == INT
    assert result.reason == reason
    assert result.direction == OUT


def test_owner_from_second_address_is_outbound() -> None:
    result = classify(msg("From: hello@LINEN.example", "To: anna@customer.example"), OWNER)
    assert result.direction == OUT
    assert result.category == C


def test_outbound_opt_out_words_do_not_mark_opt_out() -> None:
    result = classify(
        msg(OWNER_FROM, "To: anna@customer.example", text="Reply unsubscribe to stop these."),
        OWNER,
    )
    assert result.category == C and result.opt_out is False


def test_bulk_with_unsubscribe_text_is_not_opt_out() -> None:
    result = classify(
        msg(CUSTOMER_FROM, TO_OWNER, "List-Id: <l.example>", text="unsubscribe"), OWNER
    )
    assert result.category == B and result.opt_out is False


def test_inbound_opt_out_flag() -> None:
    result = classify(msg(CUSTOMER_FROM, TO_OWNER, text="Please stop emailing me."), OWNER)
    assert result.category == C
    assert result.opt_out is True


# --------------------------------------------------------------------------
# detect_opt_out
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "unsubscribe",
        "Please unsubscribe me.",
        "UNSUBSCRIBE me from your newsletter",
        "Stop emailing me!",
        "please stop sending me these emails",
        "Remove me from your list.",
        "Please remove my email address from your database",
        "Don't contact me again.",
        "Do not email me anymore",
        "Take me off your mailing list, thanks",
        "I no longer want to receive your emails",
        "Bitte abmelden.",
        "Ich möchte keine E-Mails mehr bekommen.",
        "Bitte nicht mehr kontaktieren.",
        "Je souhaite me désabonner.",
        "Je ne veux plus recevoir vos messages.",
        "Arrêtez de m'écrire s'il vous plaît.",
        "Quiero darme de baja.",
        "Por favor, no me escriban más.",
        "Cancellami dalla lista.",
        "Non scrivetemi più, grazie.",
        "Graag afmelden.",
        "Ik wil geen e-mails meer ontvangen.",
        "Quero descadastrar meu e-mail.",
        "Não quero mais receber mensagens.",
        "配信停止をお願いします。",
        "Stop e-mailing me \u2013 I don\u2019t want this.",
        "Hi Olivia,\nI can't seem to unsubscribe from your emails.\nThanks",
    ],
)
def test_opt_out_positive(text: str) -> None:
    assert detect_opt_out(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "I'll stop by the shop on Friday.",
        "How do I remove the stain from the tablecloth?",
        "I can't unsubscribe from the newsletter of my bank, can you help?",
        "Please don't stop making these aprons!",
        "Can you take the old curtains off my hands?",
        "Remove the tags before washing?",
        "I stopped by your stand, lovely stuff.",
        "We'd like to subscribe to your seasonal box.",
        "Ich möchte mich für den Workshop anmelden.",
        "",
        # the opt-out words are only in the quoted text
        "Sounds good!\n\nOn Mon, 3 Mar 2025 at 09:00, Olivia <o@l.example> wrote:\n"
        "> Reply unsubscribe to stop emails.\n> Remove me? Stop emailing me?",
        "Great.\n\n-----Original Message-----\nFrom: Olivia\nSent: Monday\n\n"
        "To unsubscribe, reply.",
    ],
)
def test_opt_out_negative(text: str) -> None:
    assert detect_opt_out(text) is False


# --------------------------------------------------------------------------
# detect_negative
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I want to complain about the delivery.",
        "I'm really disappointed with the quality.",
        "I would like a refund.",
        "The vase arrived broken.",
        "One napkin was damaged.",
        "I'm not happy with this at all.",
        "Never again.",
        "I still haven't received my order.",
        "You sent the wrong size.",
        "Ich bin enttäuscht.",
        "Die Lieferung kam kaputt an.",
        "Je suis très déçue.",
        "Je voudrais un remboursement.",
        "Estoy muy decepcionada.",
        "El paquete llegó roto.",
        "Sono molto deluso.",
        "Ik ben niet tevreden.",
        "Estou insatisfeito.",
        "商品が壊れていました。",
    ],
)
def test_negative_positive(text: str) -> None:
    assert detect_negative(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "The towels are lovely, thank you!",
        "No complaints at all, everything perfect.",
        "I was not disappointed, great quality.",
        "Nothing was broken, well packed.",
        "Could you send two more?",
        "",
        "All good!\n\nOn Mon, Olivia wrote:\n"
        "> Sorry the vase arrived broken, refund is on its way.",
    ],
)
def test_negative_negative(text: str) -> None:
    assert detect_negative(text) is False


def test_negative_on_samples() -> None:
    assert detect_negative(parse_message((SAMPLES / "german_apple.eml").read_bytes()).text)
    assert detect_negative(parse_message((SAMPLES / "dutch_outlook.eml").read_bytes()).text)
    assert not detect_negative(parse_message((SAMPLES / "gmail_reply.eml").read_bytes()).text)


def test_phrase_search_matches_the_plain_alternation() -> None:
    """_Phrases is a faster form of re.compile("|".join(parts)); it must match the same."""
    import re

    from mailbot.classify import _NEGATIVE, _OPT_OUT, _top_level_branches

    samples = [
        "i want a refund", "the mug arrived broken", "never again will i order", "all good",
        "please stop emailing me", "remove me from your list", "返金してください", "配信停止",
        "a non-refundable fee", "unbroken", "not at all happy", "i am not happy", "lovely",
        "take me off your list", "ich bin enttäuscht", "je suis déçue", "geen klacht",
    ]
    for phrases in (_NEGATIVE, _OPT_OUT):
        plain = re.compile(phrases.pattern)
        for text in samples:
            assert phrases.search(text) == bool(plain.search(text)), text
    assert _top_level_branches(r"a(b|c)|[|x]|\||d") == ["a(b|c)", "[|x]", r"\|", "d"]


def test_a_thanks_only_note_closes_the_conversation() -> None:
    from mailbot.classify import closes_conversation

    for done in ("Thanks Olivia, they arrived and look lovely!", "Thank you so much.",
                 "Vielen Dank, alles angekommen.", "Merci beaucoup !", "ありがとうございます",
                 "Perfect, thanks!"):
        assert closes_conversation(done), done
    for open_ in ("Thanks! Could you also send the invoice?", "Thank you, but the blue one is "
                  "missing.", "Do you ship to Austria?", "Thanks, please call me tomorrow.",
                  "Danke, aber die Größe passt leider nicht.", "", "I ordered two runners.",
                  "Thanks for the parcel. " * 8):
        assert not closes_conversation(open_), open_
