"""Unit tests for mailbot.parse: headers, bodies, decoding, snippets.

The sample messages in tests/samples/ were written for these tests; each one
imitates a real client's headers and quoting style.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import quopri
import random
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailbot.models import Mailbox, Message
from mailbot.parse import (
    HEADER_FIELDS,
    decode_part,
    decode_words,
    html_to_text,
    own_text,
    parse_headers,
    parse_message,
    snippet,
)

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def header_block(raw: bytes) -> bytes:
    """What the IMAP adapter gets from BODY.PEEK[HEADER.FIELDS (...)]: the wanted
    header lines, in message order, with their folding, and a blank line."""
    wanted = {name.lower() for name in HEADER_FIELDS}
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    lines = re.split(rb"\r?\n", head)
    out: list[bytes] = []
    keep = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
        keep = name in wanted
        if keep:
            out.append(line)
    return b"\r\n".join(out) + b"\r\n\r\n"


# --------------------------------------------------------------------------
# HEADER_FIELDS
# --------------------------------------------------------------------------


def test_header_fields_cover_classification_and_nothing_twice() -> None:
    lower = [name.lower() for name in HEADER_FIELDS]
    assert len(lower) == len(set(lower))
    for needed in (
        "from",
        "to",
        "cc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "content-type",
        "auto-submitted",
        "precedence",
        "list-id",
        "list-unsubscribe",
        "return-path",
        "x-autoreply",
        "x-autorespond",
        "x-auto-response-suppress",
        "x-mailbot",
        "x-microsoft-original-message-id",
    ):
        assert needed in lower
    # Bodies, attachments and trace headers are never fetched for classification.
    assert "received" not in lower
    assert "dkim-signature" not in lower


# --------------------------------------------------------------------------
# Every sample: headers, and what parse_headers and parse_message agree on
# --------------------------------------------------------------------------

ALL_SAMPLES = sorted(path.name for path in SAMPLES.glob("*.eml"))


def test_there_are_many_samples() -> None:
    assert len(ALL_SAMPLES) >= 40


@pytest.mark.parametrize("name", ALL_SAMPLES)
def test_parse_headers_agrees_with_parse_message(name: str) -> None:
    raw = sample(name)
    full = parse_message(raw)
    from_block = parse_headers(header_block(raw))
    from_whole = parse_headers(raw)
    assert from_block.text == "" and from_whole.text == ""
    for field in dataclasses.fields(Message):
        if field.name in ("text", "defects"):
            continue
        assert getattr(from_block, field.name) == getattr(full, field.name), field.name
        assert getattr(from_whole, field.name) == getattr(full, field.name), field.name
    assert full.message_id and "<" not in full.message_id and ">" not in full.message_id
    assert full.date is None or full.date.tzinfo is UTC
    for box in (full.sender, *full.to, *full.cc, *full.reply_to):
        assert box is not None and box.address == box.address.strip().lower()


SAMPLE_HEADERS = [
    # name, sender, subject, date (UTC)
    (
        "gmail_reply.eml",
        Mailbox("anna.schmidt@gmail.example", "Anna Schmidt"),
        "Re: Your linen order has shipped",
        datetime(2025, 3, 4, 7, 14, 51, tzinfo=UTC),
    ),
    (
        "outlook_desktop.eml",
        Mailbox("john@carter-sons.example", "John Carter"),
        "RE: Spring collection",
        datetime(2025, 3, 4, 10, 2, 9, tzinfo=UTC),
    ),
    (
        "iso2022jp.eml",
        Mailbox("hanako.tanaka@example.jp", "田中花子"),
        "追加注文について",
        datetime(2025, 3, 8, 1, 0, tzinfo=UTC),
    ),
    (
        "windows1252_labelled_utf8.eml",
        Mailbox("helene.martin@orange.example", "Hélène Martin"),
        "Paiement",
        datetime(2025, 3, 8, 14, 22, tzinfo=UTC),
    ),
    (
        "spanish_gmail.eml",
        Mailbox("carmen.lopez@telefonica.example", "Carmen López"),
        "Re: Pedido de servilletas",
        datetime(2025, 3, 12, 16, 40, tzinfo=UTC),
    ),
    (
        "mailchimp.eml",
        Mailbox("hello@cottonsupplies.example", "Cotton Supplies"),
        "Our spring dye workshop 🌸",
        datetime(2025, 3, 13, 15, 0, 2, tzinfo=UTC),
    ),
    (
        "bounce_postfix.eml",
        Mailbox("mailer-daemon@mx.linen.example", "Mail Delivery System"),
        "Undelivered Mail Returned to Sender",
        datetime(2025, 3, 16, 9, 0, 1, tzinfo=UTC),
    ),
    (
        "missing_content_type.eml",
        Mailbox("zoe@zoe-studio.example", "Zoë Adler"),
        "Größen",
        datetime(2025, 3, 20, 9, 0, tzinfo=UTC),
    ),
    (
        "unknown_charset.eml",
        Mailbox("yuki@studio-yuki.example", "Yuki Mori"),
        "Café curtains",
        datetime(2025, 3, 20, 10, 0, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize(("name", "sender", "subject", "date"), SAMPLE_HEADERS)
def test_sample_headers(name: str, sender: Mailbox, subject: str, date: datetime) -> None:
    msg = parse_headers(header_block(sample(name)))
    assert msg.sender == sender
    assert msg.subject == subject
    assert msg.date == date


def test_gmail_ids_and_references() -> None:
    msg = parse_headers(sample("gmail_reply.eml"))
    assert msg.message_id == "CAJ7x9Fq2b+0pQ=ZkR4mUv5nT8w@mail.gmail.example"
    assert msg.in_reply_to == "20250303090000.1234@linen.example"
    assert msg.references == ("20250303090000.1234@linen.example",)
    assert msg.to == (Mailbox("olivia@linen.example", "Olivia Owner"),)
    assert msg.content_type == "multipart/alternative"
    assert msg.return_path == "anna.schmidt@gmail.example"


def test_folded_message_id_and_multiple_references() -> None:
    web = parse_headers(sample("outlook_web_html_only.eml"))
    assert web.message_id == (
        "DB9PR10MB7353A0B1C2D3E4F5A6B7C8D9E0F1@DB9PR10MB7353.EURPRD10.PROD.OUTLOOK.example"
    )
    command = parse_headers(sample("owner_command_reply.eml"))
    assert command.references == (
        "mailbot.digest.2025-03-18.k9Lm@linen.example",
        "mailbot.draft.Zq3xT0kenAbCdEfGhIjKlMnOpQrStUv@linen.example",
    )
    assert command.thread_key == "mailbot.digest.2025-03-18.k9Lm@linen.example"


def test_classification_headers_are_read() -> None:
    news = parse_headers(sample("newsletter_list_id.eml"))
    assert news.list_id == "Fabric World News <news.fabricworld.example>"
    assert news.list_unsubscribe.startswith("<mailto:unsubscribe@")
    assert news.precedence == "bulk"
    bounce = parse_headers(sample("bounce_postfix.eml"))
    assert bounce.return_path == ""
    assert bounce.content_type == "multipart/report"
    assert bounce.auto_submitted == "auto-replied"
    exchange = parse_headers(sample("exchange_autoreply.eml"))
    assert exchange.autoreply_headers == ("X-Auto-Response-Suppress",)
    abwesend = parse_headers(sample("german_abwesenheit.eml"))
    assert abwesend.autoreply_headers == ("X-Autoreply",)
    digest = parse_headers(sample("mailbot_digest.eml"))
    assert digest.autoreply_headers == ("X-Mailbot",)
    assert digest.auto_submitted == "auto-generated"
    assert digest.return_path is None


# --------------------------------------------------------------------------
# Header details
# --------------------------------------------------------------------------


def headers(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def test_missing_message_id_gets_a_stable_synthetic_id() -> None:
    raw = sample("missing_message_id.eml")
    msg = parse_message(raw)
    expected = hashlib.sha256(
        "\n".join(
            [
                "Mon, 10 Mar 2025 08:00:00 +0000",
                "Walter White <oldclient@hotmail.example>",
                "olivia@linen.example",
                "Bed linen for the guest house",
            ]
        ).encode()
    ).hexdigest()[:32]
    assert msg.message_id == "hash-" + expected
    assert parse_headers(header_block(raw)).message_id == msg.message_id
    assert any("Message-ID" in defect for defect in msg.defects)
    other = parse_headers(raw.replace(b"Cornwall", b"Devon").replace(b"guest house", b"cottage"))
    assert other.message_id.startswith("hash-") and other.message_id != msg.message_id


def test_synthetic_id_ignores_folding() -> None:
    one = parse_headers(headers("From: A <a@b.example>", "Subject: a long subject line"))
    two = parse_headers(headers("From: A <a@b.example>", "Subject: a long\r\n  subject line"))
    assert one.message_id == two.message_id
    assert re.fullmatch(r"hash-[0-9a-f]{32}", one.message_id)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Mon, 3 Mar 2025 10:12:00 +0100", datetime(2025, 3, 3, 9, 12, tzinfo=UTC)),
        ("3 Mar 2025 10:12:00 -0500 (EST)", datetime(2025, 3, 3, 15, 12, tzinfo=UTC)),
        ("Mon, 3 Mar 2025 10:12:00 -0000", datetime(2025, 3, 3, 10, 12, tzinfo=UTC)),
        ("Mon, 3 Mar 25 10:12:00 GMT", datetime(2025, 3, 3, 10, 12, tzinfo=UTC)),
    ],
)
def test_dates_become_utc(value: str, expected: datetime) -> None:
    msg = parse_headers(headers("From: a@b.example", "Message-ID: <x@y>", f"Date: {value}"))
    assert msg.date == expected
    assert msg.date is not None and msg.date.tzinfo is UTC
    assert msg.defects == ()


@pytest.mark.parametrize(
    "value",
    ["yesterday", "Mon, 32 Foo 2025 99:99:99 +0100", "0000-00-00", "Mon, 3 Mar 2025 10:12 +9999"],
)
def test_bad_dates_become_none_with_a_defect(value: str) -> None:
    msg = parse_headers(headers("From: a@b.example", "Message-ID: <x@y>", f"Date: {value}"))
    assert msg.date is None
    assert any("Date" in defect for defect in msg.defects)


def test_missing_date_is_none_without_defect() -> None:
    msg = parse_headers(headers("From: a@b.example", "Message-ID: <x@y>"))
    assert msg.date is None
    assert msg.defects == ()


def test_return_path_absent_null_and_address() -> None:
    assert parse_headers(headers("From: a@b.example")).return_path is None
    assert parse_headers(headers("Return-Path: <>")).return_path == ""
    assert parse_headers(headers("Return-Path: < >")).return_path == ""
    assert parse_headers(headers("Return-Path: <Bounce+X@Mail.Example>")).return_path == (
        "bounce+x@mail.example"
    )
    assert parse_headers(headers("Return-path: plain@host.example")).return_path == (
        "plain@host.example"
    )


def test_message_ids_lose_brackets_and_comments() -> None:
    msg = parse_headers(
        headers(
            "Message-ID:   <Abc.123@Host.Example>  ",
            "In-Reply-To: <parent@host.example> (Anna's message of Mon, 3 Mar)",
            "References: <a@x.example><b@x.example>\r\n\t<c@x.example> <a@x.example>",
        )
    )
    assert msg.message_id == "Abc.123@Host.Example"  # case kept: ids are case-sensitive
    assert msg.in_reply_to == "parent@host.example"
    assert msg.references == ("a@x.example", "b@x.example", "c@x.example")


def test_ids_without_brackets() -> None:
    msg = parse_headers(headers("Message-ID: bare-id@host", "References: r1@h r2@h"))
    assert msg.message_id == "bare-id@host"
    assert msg.references == ("r1@h", "r2@h")


def test_addresses_are_normalised_and_names_decoded() -> None:
    msg = parse_headers(
        headers(
            "From: =?utf-8?q?M=C3=BCller=2C_Hans?= <Hans.Mueller@Example.DE>",
            'To: "Doe, John" <JOHN@doe.example>, jane@DOE.example, undisclosed-recipients:;',
            "Cc: Olivia <olivia@linen.example>, olivia@LINEN.example, (comment) <c@d.example>",
            "Reply-To: =?ISO-8859-1?Q?Andr=E9?= <andre@x.example>",
        )
    )
    assert msg.sender == Mailbox("hans.mueller@example.de", "Müller, Hans")
    assert msg.to == (Mailbox("john@doe.example", "Doe, John"), Mailbox("jane@doe.example"))
    assert msg.cc == (Mailbox("olivia@linen.example", "Olivia"), Mailbox("c@d.example", "comment"))
    assert msg.reply_to == (Mailbox("andre@x.example", "André"),)
    assert msg.recipients == msg.to + msg.cc


def test_two_to_headers_are_merged() -> None:
    msg = parse_headers(headers("To: a@x.example", "To: b@x.example"))
    assert [box.address for box in msg.to] == ["a@x.example", "b@x.example"]


def test_mailer_daemon_without_domain_is_kept() -> None:
    msg = parse_headers(headers("From: MAILER-DAEMON (Mail Delivery System)"))
    assert msg.sender == Mailbox("mailer-daemon", "Mail Delivery System")


def test_raw_8bit_headers_utf8_and_latin1() -> None:
    raw = (
        "From: Zoë <zoe@x.example>\r\nSubject: Grüße\r\n".encode()
        + "To: Hélène <h@x.example>\r\n\r\n".encode("latin-1")
    )
    msg = parse_headers(raw)
    assert msg.sender == Mailbox("zoe@x.example", "Zoë")
    assert msg.subject == "Grüße"
    assert msg.to == (Mailbox("h@x.example", "Hélène"),)


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("=?utf-8?q?Caf=C3=A9?= =?utf-8?q?_au_lait?=", "Café au lait"),
        ("=?UTF-8?B?Q2Fmw6k=?=", "Café"),
        ("Re: =?utf-8?b?w6k=?= and more", "Re: é and more"),
        # a multibyte character split across two encoded words
        ("=?utf-8?b?4oI=?= =?utf-8?b?rA==?=", "€"),
        ("=?iso-8859-1?q?Gr=FC=DFe?=", "Grüße"),
        ("=?utf-8*en?q?hello?=", "hello"),
        ("=?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=", "こんにちは"),
        ("=?x-nonsense?q?caf=C3=A9?=", "café"),
        ("=?utf-8?q?bad=ZZescape?=", "bad=ZZescape"),
        ("=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
        ("no words here", "no words here"),
    ],
)
def test_decode_words(encoded: str, decoded: str) -> None:
    assert decode_words(encoded) == decoded


def test_broken_encoded_words_do_not_raise() -> None:
    for value in ("=?utf-8?B?broken!!base64?=", "=?utf-8?B?=?=", "=?\xff?q?x?=", "=?utf-8?Q??="):
        out = decode_words(value)
        assert isinstance(out, str) and "=?" not in out


def test_garbage_headers_never_raise() -> None:
    msg = parse_headers(
        b"From: <<<@@@>>>\r\nTo: ,,,;;;\r\nSubject: =?\xff?q?\xfe?=\r\nDate: \x00\r\n"
        b"Content-Type: ;;;\r\nMessage-ID: <>\r\nReferences: <<>>\r\n\r\n"
    )
    assert isinstance(msg, Message)
    assert msg.message_id.startswith("hash-")
    assert msg.content_type == ""
    assert msg.references == ()


# --------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------


def test_plain_preferred_over_html() -> None:
    msg = parse_message(sample("gmail_reply.eml"))
    assert msg.text.startswith("Hi Olivia,\n\nThe napkins arrived this morning")
    assert "> Your order has shipped today." in msg.text  # only the plain part has this line
    assert "gmail_quote" not in msg.text and "<div" not in msg.text


def test_html_only_is_converted() -> None:
    msg = parse_message(sample("html_only.eml"))
    assert msg.text == (
        "Hello Olivia,\n\nI saw your stand at the market. Do you make:\n\n"
        "- round tablecloths\n- linen aprons for children\n\nMany thanks\nGrace Okafor"
    )
    assert "tracking" not in msg.text and "font-family" not in msg.text


def test_outlook_web_html_only_base64() -> None:
    msg = parse_message(sample("outlook_web_html_only.eml"))
    assert "Could you invoice the cushion covers to our new address? It's 12 Mill Lane" in msg.text
    assert "From: Olivia Owner <olivia@linen.example>" in msg.text
    assert "P {margin-top" not in msg.text


def test_iso_2022_jp_body_is_decoded() -> None:
    msg = parse_message(sample("iso2022jp.eml"))
    assert msg.text.startswith("オリビア様\n\nいつもお世話になっております。")
    assert "\x1b" not in msg.text


def test_utf7_body_is_decoded() -> None:
    msg = parse_message(sample("utf7.eml"))
    assert msg.text == "Can you gift-wrap the téa towels? \u2013 Danke schön"


def test_windows_1252_labelled_utf8() -> None:
    msg = parse_message(sample("windows1252_labelled_utf8.eml"))
    expected = "Le linge de table est arrivé, merci ! J\u2019ai réglé les 120 € par virement."
    assert expected in msg.text
    assert "\ufffd" not in msg.text
    assert "text/plain not valid utf-8; decoded leniently" in msg.defects


def test_windows_1252_declared_and_qp() -> None:
    msg = parse_message(sample("outlook_desktop.eml"))
    expected = "We\u2019d like to order 40 table runners for the restaurant reopening \u2013 same"
    assert expected in msg.text
    assert "\r" not in msg.text


def test_unknown_charset_and_missing_content_type() -> None:
    assert parse_message(sample("unknown_charset.eml")).text == (
        "Do you make café curtains? Ça serait parfait."
    )
    missing = parse_message(sample("missing_content_type.eml"))
    assert missing.content_type == ""
    assert missing.text == "Welche Größen haben die Schürzen? Grüße aus Köln"


def test_broken_multipart_missing_end_boundary() -> None:
    msg = parse_message(sample("broken_multipart_no_end.eml"))
    assert msg.text == "We need six aprons with our logo. What would that cost?"
    assert "CloseBoundaryNotFoundDefect" in msg.defects
    assert "JVBER" not in msg.text


def test_broken_multipart_wrong_boundary_is_recovered() -> None:
    msg = parse_message(sample("broken_multipart_wrong_boundary.eml"))
    assert msg.text == "Do you still have the oat-coloured linen in 280 cm width?"
    assert any("boundary recovered" in defect for defect in msg.defects)


def test_multipart_without_any_boundary_reads_body_as_text() -> None:
    raw = b"From: a@b.example\nContent-Type: multipart/mixed\n\nJust some words.\n"
    msg = parse_message(raw)
    assert msg.text == "Just some words."


def test_base64_errors_are_tolerated() -> None:
    msg = parse_message(sample("base64_errors.eml"))
    assert msg.text == "Hello Olivia, do you ship to Norway? Best, Ingrid"


def test_attachments_are_never_read() -> None:
    msg = parse_message(sample("with_attachments.eml"))
    assert msg.text == "The window measurements are attached."
    assert "SECRET" not in msg.text and "PDF" not in msg.text


def test_bounce_text_is_the_human_part_only() -> None:
    msg = parse_message(sample("bounce_postfix.eml"))
    assert msg.text.startswith("This is the mail system at host mx.linen.example.")
    assert "User unknown" in msg.text
    assert "Reporting-MTA" not in msg.text  # message/delivery-status part
    assert "just checking in" not in msg.text  # the returned message


def test_format_flowed_is_joined() -> None:
    msg = parse_message(sample("thunderbird_bottom_post.eml"))
    assert "who wants a softer look." in msg.text
    assert "a client in Vienna who wants a softer look." in msg.text.replace("\n", "|")


def test_crlf_and_lf_messages_give_the_same_text() -> None:
    raw = sample("dutch_outlook.eml")
    assert b"\r\n" in raw
    assert parse_message(raw).text == parse_message(raw.replace(b"\r\n", b"\n")).text


def test_parse_message_accepts_bytearray_and_memoryview() -> None:
    raw = sample("iphone.eml")
    assert parse_message(bytearray(raw)) == parse_message(raw)
    assert parse_message(memoryview(raw)) == parse_message(raw)


# --------------------------------------------------------------------------
# Never raise
# --------------------------------------------------------------------------


def _check(msg: Message) -> None:
    assert isinstance(msg, Message)
    assert isinstance(msg.message_id, str) and msg.message_id
    assert isinstance(msg.text, str)
    assert isinstance(snippet(msg.text), str)


def test_random_garbage_never_raises() -> None:
    rng = random.Random(20250303)
    alphabet = b"\x00\xff\x1b\r\n :;<>=?-\"'\\/abcdefQB=?utf-8?--boundary\tContent-Type"
    for _ in range(400):
        size = rng.randrange(0, 3000)
        if rng.random() < 0.5:
            raw = bytes(rng.randrange(256) for _ in range(size))
        else:
            raw = bytes(rng.choice(alphabet) for _ in range(size))
        _check(parse_message(raw))
        _check(parse_headers(raw))


@pytest.mark.parametrize("name", ALL_SAMPLES)
def test_mutated_samples_never_raise(name: str) -> None:
    rng = random.Random(name)
    raw = sample(name)
    for _ in range(12):
        cut = rng.randrange(len(raw) + 1)
        _check(parse_message(raw[:cut]))
        _check(parse_headers(raw[:cut]))
        mutated = bytearray(raw)
        for _ in range(20):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        _check(parse_message(bytes(mutated)))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n",
        b"\r\n\r\n\r\n",
        b"no headers at all, just text",
        b"From foo@bar Mon Jan  1 00:00:00 2025\nFrom: a@b.example\n\nmbox line",
        b"Subject: " + b"x" * 200_000 + b"\n\nbody",
        b"From: a@b.example\nContent-Type: text/html\n\n" + b"<div>" * 20_000,
        b"From: a@b.example\nContent-Type: text/plain; charset=\n\nempty charset",
        b'From: a@b.example\nContent-Type: text/plain; charset="utf-8\nCTE',
        b"From: a@b.example\nContent-Transfer-Encoding: base64\n\n====",
        b"From: a@b.example\nContent-Type: message/rfc822\n\nFrom: inner@x\n\ninner",
        b'From: a@b.example\nContent-Type: multipart/mixed; boundary=""\n\n--\n\n----\n',
        b"From: a@b.example\nContent-Type: text/html\n\n<![if !supportLists]><p>x</p><!--",
    ],
)
def test_odd_inputs_never_raise(raw: bytes) -> None:
    _check(parse_message(raw))
    _check(parse_headers(raw))


def test_deeply_nested_multipart_does_not_raise() -> None:
    depth = 300
    body = b"From: a@b.example\nContent-Type: multipart/mixed; boundary=b0\n\n"
    for level in range(depth):
        body += b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (level, level + 1)
    body += b"--b%d\nContent-Type: text/plain\n\ndeep text\n" % depth
    msg = parse_message(body)
    _check(msg)
    assert any("deep" in defect for defect in msg.defects)


def test_shallow_nesting_is_read() -> None:
    body = b"From: a@b.example\nContent-Type: multipart/mixed; boundary=b0\n\n"
    for level in range(8):
        body += b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (level, level + 1)
    body += b"--b8\nContent-Type: text/plain\n\nfound me\n--b8--\n"
    assert parse_message(body).text == "found me"


# --------------------------------------------------------------------------
# decode_part (partial IMAP fetches)
# --------------------------------------------------------------------------

LONG_TEXT = "Grüße aus Köln \u2013 東京の皆さん、こんにちは! € " * 20


@pytest.mark.parametrize("charset", ["utf-8", "iso-2022-jp", "shift_jis"])
def test_truncated_base64_gives_a_prefix(charset: str) -> None:
    text = LONG_TEXT if charset == "utf-8" else "東京の皆さん、こんにちは。" * 30
    encoded = base64.encodebytes(text.encode(charset))
    for cut in range(0, len(encoded), 7):
        out = decode_part(encoded[:cut], charset=charset, transfer_encoding="base64")
        assert text.startswith(out), cut
    assert decode_part(encoded, charset=charset, transfer_encoding="base64") == text


def test_truncated_quoted_printable_gives_a_prefix() -> None:
    encoded = quopri.encodestring(LONG_TEXT.encode("utf-8"))
    for cut in range(len(encoded)):
        out = decode_part(encoded[:cut], charset="utf-8", transfer_encoding="quoted-printable")
        assert LONG_TEXT.startswith(out), cut
        assert "=" not in out[-3:]


def test_truncated_8bit_multibyte_gives_a_prefix() -> None:
    raw = LONG_TEXT.encode("utf-8")
    for cut in range(len(raw)):
        out = decode_part(raw[:cut], charset="utf-8", transfer_encoding="8bit")
        assert LONG_TEXT.startswith(out), cut
        assert "\ufffd" not in out


def test_decode_part_charset_fallbacks() -> None:
    latin = "Crème brûlée, 5 €".encode("cp1252")
    assert decode_part(latin, charset="utf-8", transfer_encoding="8bit") == "Crème brûlée, 5 €"
    assert decode_part(latin, charset="", transfer_encoding="") == "Crème brûlée, 5 €"
    assert decode_part(latin, charset="x-unknown", transfer_encoding="7bit") == "Crème brûlée, 5 €"
    utf8 = "Crème brûlée".encode()
    assert decode_part(utf8, charset="us-ascii", transfer_encoding="8bit") == "Crème brûlée"
    # declared iso-8859-1 means windows-1252 in practice (curly quotes)
    curly = decode_part(b"\x93hi\x94", charset="iso-8859-1", transfer_encoding="")
    assert curly == "\u201chi\u201d"
    # mostly UTF-8 with one stray windows-1252 byte keeps the UTF-8 characters
    mixed = "naïve ".encode() + b"\x96 caf\xe9"
    assert decode_part(mixed, charset="utf-8", transfer_encoding="8bit") == "naïve \u2013 café"
    # undeclared ISO-2022-JP is recognised by its escape sequence
    assert decode_part("日本語".encode("iso2022_jp"), charset="", transfer_encoding="") == "日本語"


def test_decode_part_line_ends_and_odd_encodings() -> None:
    assert decode_part(b"a\r\nb\rc\n", charset="utf-8", transfer_encoding="7bit") == "a\nb\nc\n"
    assert decode_part(b"QQ==QkI=", charset="", transfer_encoding="base64") == "ABB"
    assert decode_part(b"SGVsbG8", charset="", transfer_encoding=" Base64 ") == "Hello"
    assert decode_part(b"x=\r\ny= \r\nz", charset="", transfer_encoding="quoted-printable") == (
        "xyz"
    )
    assert decode_part(b"plain", charset="", transfer_encoding="x-uuencode") == "plain"
    assert decode_part(b"", charset="utf-8", transfer_encoding="base64") == ""


# --------------------------------------------------------------------------
# html_to_text
# --------------------------------------------------------------------------


def test_html_to_text_blocks_and_breaks() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<script>alert('x')</script><div>Line one<br>Line two</div>"
        "<p>Para &amp; more&nbsp;text</p><ul><li>first</li><li>second</li></ul>"
        "<div>Last <b>bold</b> word</div></body></html>"
    )
    assert html_to_text(html) == (
        "Line one\nLine two\n\nPara & more text\n\n- first\n- second\n\nLast bold word"
    )


def test_html_blockquote_is_quoted() -> None:
    html = (
        "<div>My answer</div><div class=gmail_quote>On Mon, Anna wrote:<br>"
        "<blockquote>Old line<br>Older line</blockquote></div>"
    )
    assert html_to_text(html) == "My answer\nOn Mon, Anna wrote:\n\n> Old line\n> Older line"
    assert snippet(html_to_text(html)) == "My answer"


def test_html_to_text_pre_and_broken_markup() -> None:
    assert html_to_text("<pre>a  b\n  c</pre>") == "a  b\n  c"
    assert html_to_text("<div><p>unclosed <b>tags") == "unclosed tags"
    assert html_to_text("<<<>>>&&&;") == "<<<>>>&&&;"
    assert html_to_text("") == ""


# --------------------------------------------------------------------------
# Snippets: samples
# --------------------------------------------------------------------------

SAMPLE_SNIPPETS = [
    (
        "gmail_reply.eml",
        "Hi Olivia, The napkins arrived this morning and they are lovely. "
        "Could you send me two more sets in sage green before Easter?",
    ),
    (
        "outlook_desktop.eml",
        "Hello Olivia, We\u2019d like to order 40 table runners for the "
        "restaurant reopening \u2013 same as last year. Can you confirm the price?",
    ),
    (
        "outlook_web_html_only.eml",
        "Hi Olivia, Could you invoice the cushion covers to our "
        "new address? It's 12 Mill Lane, Leeds. Priya",
    ),
    (
        "apple_mail.eml",
        "Dear Olivia, the tea towels are perfect. I'd love to come by the "
        "studio next week to see the new colours.",
    ),
    ("iphone.eml", "Yes please, Thursday works for me. I'll bring the old curtains too."),
    (
        "thunderbird_bottom_post.eml",
        "Both, please. The washed one is for a client in Vienna "
        "who wants a softer look. Yes, to the studio.",
    ),
    ("android_samsung.eml", "Grazie mille! Il pacco è arrivato oggi, tutto perfetto."),
    (
        "html_only.eml",
        "Hello Olivia, I saw your stand at the market. Do you make: "
        "- round tablecloths - linen aprons for children",
    ),
    (
        "iso2022jp.eml",
        "オリビア様 いつもお世話になっております。 先日のテーブルクロスを2枚追加で注文したいです。",
    ),
    (
        "windows1252_labelled_utf8.eml",
        "Bonjour Olivia, Le linge de table est arrivé, merci ! "
        "J\u2019ai réglé les 120 € par virement.",
    ),
    (
        "german_gmx.eml",
        "Hallo Olivia, vielen Dank, die Kissenbezüge gefallen mir sehr. "
        "Könnten Sie mir noch zwei in Salbeigrün schicken?",
    ),
    (
        "german_apple.eml",
        "Leider ist eine der Tischdecken beschädigt angekommen. Ich bin ziemlich enttäuscht.",
    ),
    (
        "french_gmail.eml",
        "Merci Olivia, je préfère ne plus recevoir vos newsletters, mais je garde la commande.",
    ),
    ("spanish_gmail.eml", "Hola Olivia, ¿podrías enviarme también seis servilletas azules?"),
    (
        "dutch_outlook.eml",
        "Hoi Olivia, De levering is nog steeds niet aangekomen en ik ben "
        "niet tevreden. Graag mijn geld terug.",
    ),
    ("customer_opt_out.eml", "Please take me off your mailing list, I have moved abroad."),
    ("customer_forward.eml", "The courier says the parcel is lost - could you check?"),
    (
        "customer_quoted_unsubscribe.eml",
        "Lovely! Please stop by the cafe when you deliver, I'd like to see the blue ones.",
    ),
    ("owner_command_reply.eml", "send"),
    ("with_attachments.eml", "The window measurements are attached."),
]


@pytest.mark.parametrize(("name", "expected"), SAMPLE_SNIPPETS)
def test_sample_snippets(name: str, expected: str) -> None:
    assert snippet(parse_message(sample(name)).text) == expected


# --------------------------------------------------------------------------
# Snippets: quoting styles and languages
# --------------------------------------------------------------------------

QUOTING_STYLES = [
    # Outlook "-----Original Message-----"
    (
        "Fine, Tuesday then.\n\n-----Original Message-----\nFrom: Olivia\nSent: Monday\n"
        "To: Bob\nSubject: Meeting\n\nShall we meet?",
        "Fine, Tuesday then.",
    ),
    # Outlook block with bold markers as pasted from HTML
    ("Yes.\n\n*From:* Olivia Owner <o@l.example>\n*Sent:* Monday\n*To:* Bob\n\nOld text", "Yes."),
    # French
    (
        "Parfait, merci.\n\nLe lun. 3 mars 2025 à 10:12, Olivia Owner <o@l.example> a écrit :\n"
        "> Bonjour",
        "Parfait, merci.",
    ),
    # French without quotes following (cut anyway)
    ("D'accord.\nLe 3 mars 2025 à 10:12, Olivia a écrit :\nBonjour Luc", "D'accord."),
    # German
    (
        "Passt, danke!\n\nAm 03.03.2025 um 10:12 schrieb Olivia Owner <o@l.example>:\n\n> Hallo",
        "Passt, danke!",
    ),
    ("Gut.\n\nOlivia Owner <o@l.example> schrieb am Mo., 3. März 2025, 10:12:\n> Hallo", "Gut."),
    # Spanish
    (
        "Perfecto.\n\nEl lun, 3 mar 2025 a las 10:12, Olivia (<o@l.example>) escribió:\n> Hola",
        "Perfecto.",
    ),
    # Italian
    (
        "Va bene.\n\nIl giorno lun 3 mar 2025 alle ore 10:12 Olivia <o@l.example> ha scritto:\n"
        "> Ciao",
        "Va bene.",
    ),
    # Dutch
    ("Prima.\n\nOp ma 3 mrt 2025 om 10:12 schreef Olivia <o@l.example>:\n> Hoi", "Prima."),
    # Portuguese
    (
        "Obrigada!\n\nEm seg., 3 de mar. de 2025 às 10:12, Olivia <o@l.example> escreveu:\n> Olá",
        "Obrigada!",
    ),
    # Japanese (Gmail and Apple styles)
    (
        "了解しました。\n\n2025年3月3日(月) 10:12 Olivia Owner <o@l.example>:\n> こんにちは",
        "了解しました。",
    ),
    (
        "ありがとうございます。\n\n2025/03/03 10:12、Olivia <o@l.example>のメール:\n\n> こんにちは",
        "ありがとうございます。",
    ),
    # Gmail attribution wrapped over two lines
    (
        "Great!\n\nOn Mon, 3 Mar 2025 at 10:12, Olivia Owner <\nolivia@linen.example> wrote:\n\n"
        "> Hi",
        "Great!",
    ),
    # inline answers between quotes are kept
    ("On Mon, Olivia wrote:\n> Blue or green?\nGreen.\n> How many?\nTwo.", "Green. Two."),
    # forwarded message
    ("FYI\n\n---------- Forwarded message ---------\nFrom: X\nDate: Y\n\nOld", "FYI"),
    ("Look at this\n\nBegin forwarded message:\n\nFrom: X", "Look at this"),
    # underscores separator (Outlook mobile)
    ("Sure\n\n________________________________\nFrom: Olivia", "Sure"),
    # signatures
    ("See you Friday.\n\n-- \nAnna Schmidt\nAnna's Bakery", "See you Friday."),
    ("See you Friday.\n\nSent from my iPhone", "See you Friday."),
    ("See you Friday.\n\nGet Outlook for iOS<https://aka.ms/o0ukef>", "See you Friday."),
    ("Bis Freitag.\n\nVon meinem iPhone gesendet", "Bis Freitag."),
    ("À vendredi.\n\nEnvoyé de mon iPhone", "À vendredi."),
    ("Hasta el viernes.\n\nEnviado desde mi iPhone", "Hasta el viernes."),
    ("Tot vrijdag.\n\nVerzonden vanaf mijn iPhone", "Tot vrijdag."),
    ("金曜日に。\n\niPhoneから送信", "金曜日に。"),
    # closings with a name and company lines
    (
        "Please send the invoice.\n\nKind regards,\nJohn Carter\nCarter & Sons\n+44 20 7946",
        "Please send the invoice.",
    ),
    (
        "Bitte schicken Sie die Rechnung.\n\nMit freundlichen Grüßen\nJonas Wagner",
        "Bitte schicken Sie die Rechnung.",
    ),
    ("Merci pour tout.\n\nCordialement,\nHélène", "Merci pour tout."),
    ("The towels are lovely.\n\nThanks, Anna", "The towels are lovely."),
    # whitespace collapses
    ("  Many   spaces\n\n\n and\tlines  ", "Many spaces and lines"),
]


@pytest.mark.parametrize(("text", "expected"), QUOTING_STYLES)
def test_snippet_quoting_styles(text: str, expected: str) -> None:
    assert snippet(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Library quirks we do not inherit: mailparser_reply's signature rules cut at
        # a line starting "Tak..." (Danish) and at "- item" lists.
        ("Hi,\nTake me off your list please.", "Hi, Take me off your list please."),
        ("We need:\n- two aprons\n- one runner", "We need: - two aprons - one runner"),
        # "Thanks," in the middle of a message is not a signature
        (
            "Hi Olivia,\nThanks, the towels arrived and they are great.\nCan I order more?",
            "Hi Olivia, Thanks, the towels arrived and they are great. Can I order more?",
        ),
        # order details that look like header lines are not a quote header
        (
            "Order: 1042\nDate: 3 March\nTo: Anna Schmidt, Hamburg\nIs it on its way?",
            "Order: 1042 Date: 3 March To: Anna Schmidt, Hamburg Is it on its way?",
        ),
        ("Do: bring the blue ones\nData: none", "Do: bring the blue ones Data: none"),
        # a sentence that starts like an attribution but is not one
        (
            "On Monday my husband wrote the cheque.\nIt should arrive soon.",
            "On Monday my husband wrote the cheque. It should arrive soon.",
        ),
        (
            "Sent from the warehouse yesterday, it says.",
            "Sent from the warehouse yesterday, it says.",
        ),
        # only a closing: kept rather than emptied
        ("Thank you!", "Thank you!"),
        # only quoted text: nothing of the writer's own
        ("> just\n> quoted", ""),
        ("", ""),
    ],
)
def test_snippet_does_not_overcut(text: str, expected: str) -> None:
    assert snippet(text) == expected


def test_snippet_uses_library_for_headers_we_do_not_know() -> None:
    # Danish and Swedish attributions are not in our own rules; mailparser_reply has them.
    danish = "Tak for det.\n\nDen 3. mar. 2025 kl. 10.12 skrev Olivia <o@l.example>:\nHej"
    assert snippet(danish) == "Tak for det."
    assert snippet("Ok.\n\nFrån: Olivia\nSkickat: den 3 mars 2025\nTill: Lars\nÄmne: Hej") == "Ok."


def test_snippet_limit_cuts_on_a_word_with_ellipsis() -> None:
    text = "The quick brown fox jumps over the lazy dog " * 10
    out = snippet(text, limit=50)
    assert out == "The quick brown fox jumps over the lazy dog The…"
    assert len(out) <= 50
    assert snippet(text, limit=10) == "The quick…"
    assert len(snippet(text)) <= 160 and snippet(text).endswith("…")
    assert snippet("short", limit=160) == "short"
    assert snippet("exactly ten", limit=11) == "exactly ten"
    assert snippet("anything", limit=0) == ""


def test_snippet_without_spaces_is_cut_hard() -> None:
    text = "あ" * 300
    out = snippet(text, limit=20)
    assert out == "あ" * 19 + "…"


def test_own_text_keeps_lines() -> None:
    text = "First line.\nSecond line.\n\n> quoted\n\nThird line.\n\nBest,\nAnna"
    assert own_text(text) == "First line.\nSecond line.\n\n\nThird line."


def test_snippet_is_fast_on_huge_text() -> None:
    text = ("On " + "x " * 300 + "\n") * 2000 + ("word " * 50 + "\n") * 20000
    started = time.perf_counter()
    out = snippet(text)
    assert len(out) <= 160
    assert time.perf_counter() - started < 5


# --------------------------------------------------------------------------
# Throughput (printed for the report, not asserted)
# --------------------------------------------------------------------------


def test_parse_headers_throughput() -> None:
    blocks = [header_block(sample(name)) for name in ALL_SAMPLES]
    batch = [blocks[i % len(blocks)] for i in range(2000)]
    started = time.perf_counter()
    parsed = [parse_headers(block) for block in batch]
    elapsed = time.perf_counter() - started
    full = [sample(ALL_SAMPLES[i % len(ALL_SAMPLES)]) for i in range(2000)]
    started = time.perf_counter()
    bodies = [parse_message(raw) for raw in full]
    elapsed_full = time.perf_counter() - started
    print(
        f"\nparse_headers: {len(batch) / elapsed:,.0f} messages/s "
        f"({len(batch)} header blocks, {sum(map(len, batch)) / len(batch):.0f} bytes avg); "
        f"parse_message: {len(full) / elapsed_full:,.0f} messages/s "
        f"({sum(map(len, full)) / len(full):.0f} bytes avg)"
    )
    assert all(msg.message_id for msg in parsed)
    assert sum(1 for msg in bodies if msg.text) >= len(bodies) * 0.9


def test_every_branch_of_the_library_quote_pattern_needs_a_prefilter_mark() -> None:
    """own_text skips mail-parser-reply's regex when no mark is present; that must be exact."""
    from mailbot.classify import _top_level_branches
    from mailbot.parse import _LIBRARY_NEEDS, _reply_header_regex

    pattern = _reply_header_regex()
    assert pattern is not None
    branches = _top_level_branches(pattern.pattern)
    assert len(branches) > 10
    for branch in branches:
        # the dashes branch spells its five dashes as a repeat
        literal = branch.replace("-{5,}", "-----")
        assert any(mark in literal for mark in _LIBRARY_NEEDS), branch[:80]


def test_quote_headers_are_still_cut_with_the_prefilter() -> None:
    from mailbot.parse import own_text

    text = ("Thanks, the blue one please.\n\n-----Original Message-----\n"
            "We have it in blue and green.\n")
    assert own_text(text) == "Thanks, the blue one please."
    danish = "Ja tak, send den.\n\nDen 3. mar. 2026 kl. 10.12 skrev Anna <a@x.dk>:\n\ngammel\n"
    assert own_text(danish) == "Ja tak, send den."
