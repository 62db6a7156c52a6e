"""Raw email bytes -> :class:`mailbot.models.Message`, plus the customer's own words.

Pure functions: bytes or str in, frozen dataclasses or str out; no I/O, and no
function here raises on malformed input (broken MIME, unknown charsets, bad
dates and truncated payloads are worked around and noted in ``Message.defects``).

* :func:`parse_headers` reads a header block (what the IMAP adapter fetches with
  ``BODY.PEEK[HEADER.FIELDS (...HEADER_FIELDS...)]``). It uses the stdlib
  header-only parser with the ``compat32`` policy and decodes RFC 2047 words
  itself, which is several times faster than ``policy.default``.
* :func:`parse_message` reads a whole message (mbox/Maildir import, tests): the
  same headers plus the text, text/plain preferred, HTML converted only when
  there is no plain part. Attachments are skipped before their payload is
  touched. The MIME walk is the stdlib's (``compat32``) with our own decoding:
  mail-parser 4.8.0 returns ISO-2022-JP and UTF-7 bodies undecoded, finds no
  text in a multipart whose boundary is missing or wrong, and re-encodes
  non-base64 attachments, so it is used only as a last resort when the stdlib
  walk itself fails (it never has in the tests).
* :func:`decode_part` decodes one body part fetched alone over IMAP, which may
  be truncated mid base64 quantum, mid QP escape or mid multibyte character.
* :func:`own_text` and :func:`snippet` keep the writer's own new words: quoted
  replies, attribution lines ("On ... wrote:" in many languages), Outlook
  header blocks and signatures are dropped. mailparser_reply's header
  detection (all languages but Polish) is used as a safety net after our own
  line rules; its signature rules are not used (see :func:`own_text`).
"""

from __future__ import annotations

import binascii
import codecs
import dataclasses
import email.utils
import hashlib
import logging
import re
import warnings
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from email import policy
from email.message import Message as EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from functools import lru_cache
from html.parser import HTMLParser

from mailbot.models import Mailbox, Message

log = logging.getLogger(__name__)

__all__ = [
    "HEADER_FIELDS",
    "decode_part",
    "decode_words",
    "html_to_text",
    "own_text",
    "parse_headers",
    "parse_message",
    "snippet",
]

#: Header fields the IMAP adapter fetches for classification (and nothing more).
HEADER_FIELDS: tuple[str, ...] = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Content-Type",
    "Auto-Submitted",
    "Precedence",
    "List-Id",
    "List-Unsubscribe",
    "Return-Path",
    "X-Autoreply",
    "X-Autorespond",
    "X-Auto-Response-Suppress",
    "X-Mailbot",
    "X-Microsoft-Original-Message-ID",
)

# Headers whose mere presence is recorded in Message.autoreply_headers (canonical
# spelling). X-Auto-Response-Suppress alone does not make a message automated
# (Outlook sets it on some ordinary mail); classify decides.
_PRESENCE_HEADERS: tuple[str, ...] = (
    "X-Autoreply",
    "X-Autorespond",
    "X-Auto-Response-Suppress",
    "X-Mailbot",
)
_PRESENCE_BY_LOWER = {name.lower(): name for name in _PRESENCE_HEADERS}
_WANTED = frozenset(name.lower() for name in HEADER_FIELDS)
_ADDRESS_FIELDS = frozenset({"from", "to", "cc", "reply-to"})

_MAX_TEXT = 2_000_000  # characters of body text kept per message
_MAX_DEPTH = 30  # MIME nesting we walk into

# --------------------------------------------------------------------------
# Charsets and byte decoding
# --------------------------------------------------------------------------

_CHARSET_ALIASES = {
    # WHATWG: latin-1 labels mean windows-1252 in practice.
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "x-user-defined": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "big5": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "iso-8859-8-i": "iso8859-8",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "unicode-1-1-utf-7": "utf-7",
    "utf7": "utf-7",
    "x-unicode20utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "utf8": "utf-8",
    "tis-620": "cp874",
    "windows-874": "cp874",
}
# Labels that say nothing useful: decode as UTF-8, then windows-1252.
_UNKNOWN_LABELS = frozenset(
    {"", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "unknown", "default", "charset", "8bit"}
)
# Codecs tried after a strict failure of the declared one, before UTF-8.
_CODEC_SUPERSETS: dict[str, tuple[str, ...]] = {
    "iso2022_jp": ("iso2022_jp_ext", "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3"),
    "euc_jp": ("euc_jis_2004",),
}
# Codecs whose encoded form is plain ASCII (the ASCII fast path must not skip them).
_ASCII_STATEFUL = frozenset(
    {
        "utf_7",
        "iso2022_jp",
        "iso2022_jp_1",
        "iso2022_jp_2",
        "iso2022_jp_2004",
        "iso2022_jp_3",
        "iso2022_jp_ext",
        "iso2022_kr",
        "hz",
    }
)
_ISO2022JP_ESC = re.compile(rb"\x1b\$[@B]")
_SURROGATE = re.compile("[\udc80-\udcff]")
_INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff\u034f\u00ad\x00]")


@lru_cache(maxsize=256)
def _codec_name(charset: str) -> str | None:
    """The Python codec for a MIME charset label, or None when unknown/meaningless."""
    label = charset.strip().strip("\"'").lower()
    label = label.split("*", 1)[0]  # RFC 2231 language suffix: utf-8*en
    if label in _UNKNOWN_LABELS:
        return None
    label = _CHARSET_ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name.replace("-", "_")
    except (LookupError, ValueError):
        return None
    if name == "ascii":
        return None
    if name == "euc_kr":
        return "cp949"
    return name


def _surrogate_to_cp1252(match: re.Match[str]) -> str:
    byte = bytes([ord(match.group()) - 0xDC00])
    try:
        return byte.decode("cp1252")
    except UnicodeDecodeError:  # the five bytes windows-1252 leaves undefined
        return byte.decode("latin-1")


def _surrogates_as_cp1252(text: str) -> str:
    """Turn surrogate-escaped bytes into windows-1252 characters."""
    return _SURROGATE.sub(_surrogate_to_cp1252, text)


def _try_decode(data: bytes, codec: str, final: bool) -> str | None:
    try:
        decoder = codecs.getincrementaldecoder(codec)("strict")
        return str(decoder.decode(data, final=final))
    except (UnicodeError, LookupError, ValueError, TypeError):
        return None


def _decode_bytes(data: bytes, charset: str = "", *, final: bool = True) -> tuple[str, bool]:
    """Decode ``data`` with the declared charset, then UTF-8, then windows-1252.

    With ``final=False`` an incomplete multibyte sequence at the end (a truncated
    partial fetch) is dropped instead of becoming garbage. Returns the text and
    whether a fallback was needed.
    """
    codec = _codec_name(charset) if charset else None
    if codec is None and _ISO2022JP_ESC.search(data):
        codec = "iso2022_jp"  # undeclared Japanese mail
    if data.isascii() and (codec is None or codec not in _ASCII_STATEFUL):
        return data.decode("ascii"), False
    candidates: list[str] = []
    if codec is not None:
        candidates.append(codec)
        candidates.extend(_CODEC_SUPERSETS.get(codec, ()))
    if "utf_8" not in candidates:
        candidates.append("utf_8")
    for index, candidate in enumerate(candidates):
        text = _try_decode(data, candidate, final)
        if text is not None:
            return text, index > 0 and codec is not None
    # Mostly UTF-8 with stray windows-1252 bytes (or all windows-1252). A lone lead
    # byte at the end is then more likely windows-1252 than a cut UTF-8 sequence.
    text = data.decode("utf-8", errors="surrogateescape")
    return _surrogates_as_cp1252(text), True


def _header_str(value: object) -> str:
    """A header value from the compat32 parser as text (raw 8-bit bytes decoded)."""
    if not isinstance(value, str):
        value = str(value)
    if value.isascii():
        return value
    raw = value.encode("utf-8", errors="surrogateescape")
    return _decode_bytes(raw)[0]


# --------------------------------------------------------------------------
# RFC 2047 encoded words
# --------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/=]")
_B64_SEGMENT = re.compile(rb"[A-Za-z0-9+/]+")


def _b64_lenient(data: bytes) -> bytes:
    """Decode base64, tolerating junk, missing padding, truncation and concatenation."""
    clean = _B64_JUNK.sub(b"", data)
    stripped = clean.rstrip(b"=")
    if b"=" not in stripped and len(stripped) % 4 != 1:
        pad = (-len(stripped)) % 4
        try:
            return binascii.a2b_base64(stripped + b"=" * pad)
        except (binascii.Error, ValueError):
            pass
    out: list[bytes] = []
    for match in _B64_SEGMENT.finditer(clean):
        segment = match.group()
        if len(segment) % 4 == 1:
            segment = segment[:-1]
        if not segment:
            continue
        try:
            out.append(binascii.a2b_base64(segment + b"=" * ((-len(segment)) % 4)))
        except (binascii.Error, ValueError):
            continue
    return b"".join(out)


_QP_SOFT_BREAK_SPACES = re.compile(rb"=[ \t]+(\r?\n)")
_QP_TRUNCATED_ESCAPE = re.compile(rb"=[0-9A-Fa-f]?\Z")


def _qp_lenient(data: bytes, *, header: bool = False) -> bytes:
    data = _QP_SOFT_BREAK_SPACES.sub(rb"=\1", data)
    data = _QP_TRUNCATED_ESCAPE.sub(b"", data)
    try:
        return binascii.a2b_qp(data, header=header)
    except (binascii.Error, ValueError):
        return data


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; never raises.

    Adjacent encoded words (only whitespace between) are joined without the
    whitespace, and their bytes are decoded together when they share a charset
    (clients split multibyte characters across words).
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    run: list[tuple[str, bytearray]] = []

    def flush() -> None:
        for charset, data in run:
            out.append(_decode_bytes(bytes(data), charset)[0])
        run.clear()

    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[pos : match.start()]
        if between and (not run or between.strip()):
            flush()
            out.append(between)
        charset, encoding, payload = match.groups()
        raw = payload.encode("utf-8", errors="replace")
        data = _b64_lenient(raw) if encoding in "bB" else _qp_lenient(raw, header=True)
        label = charset.split("*", 1)[0].lower()
        if run and run[-1][0] == label:
            run[-1][1].extend(data)
        else:
            run.append((label, bytearray(data)))
        pos = match.end()
    flush()
    out.append(value[pos:])
    return "".join(out)


# --------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------

_FOLD = re.compile(r"\r?\n[ \t]*")
_WS = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ANGLE_ID = re.compile(r"<([^<>\s]*)>")


def _unfold(value: str) -> str:
    return _FOLD.sub(" ", value).strip()


def _clean_text(value: str) -> str:
    """Decoded header text on one line without control characters."""
    value = _CONTROL.sub("", decode_words(value))
    return _WS.sub(" ", _INVISIBLE.sub("", value)).strip()


def _normalise_address(address: str) -> str:
    address = address.strip().strip("<>").strip()
    return address.lower()


_SIMPLE_ADDRESS = re.compile(r"^\s*(?:([^<>]*?)\s*<([^<>\s]+@[^<>\s]+)>|([^\s<>]+@[^\s<>]+))\s*$")


def _simple_pairs(values: list[str]) -> list[tuple[str, str]] | None:
    """Fast path for the common ``Name <a@b>, c@d`` forms; None when unsure."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        if any(ch in value for ch in '"()\\;:'):
            return None
        for piece in value.split(","):
            if not piece.strip():
                continue
            match = _SIMPLE_ADDRESS.match(piece)
            if match is None:
                return None
            name, bracketed, bare = match.groups()
            pairs.append(((name or "").strip(), bracketed or bare))
    return pairs


def _parse_addresses(values: list[str]) -> tuple[Mailbox, ...]:
    if not values:
        return ()
    pairs = _simple_pairs(values)
    if pairs is None:
        try:
            pairs = email.utils.getaddresses(values)
        except Exception:  # the stdlib parser is not meant to raise; be sure
            pairs = []
    seen: set[str] = set()
    out: list[Mailbox] = []
    for name, address in pairs:
        addr = _normalise_address(decode_words(address))
        if not addr or addr in seen or any(ch.isspace() for ch in addr) or "," in addr:
            continue
        seen.add(addr)
        display = _clean_text(name).strip("\"' ")
        if display.startswith("(") and display.endswith(")"):
            display = display[1:-1].strip()
        if display.lower() == addr:
            display = ""
        out.append(Mailbox(address=addr, name=display))
    return tuple(out)


def _first_id(value: str) -> str:
    match = _ANGLE_ID.search(value)
    if match and match.group(1):
        return match.group(1).strip()
    tokens = value.replace("<", " ").replace(">", " ").split()
    return tokens[0] if tokens else ""


def _id_list(value: str) -> tuple[str, ...]:
    ids = [found for found in _ANGLE_ID.findall(value) if found]
    if not ids:
        ids = value.replace("<", " ").replace(">", " ").split()
    seen: set[str] = set()
    out: list[str] = []
    for item in ids:
        item = item.strip()
        if item and item not in seen:
            seen.add(item)
            out.append(item)
    return tuple(out)


def _parse_date(value: str, defects: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        defects.append(f"unparsable Date header: {value[:80]!r}")
        return None
    try:
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        defects.append(f"Date out of range: {value[:80]!r}")
        return None


def _synthetic_id(first: dict[str, str]) -> str:
    names = ("date", "from", "to", "subject")
    parts = [_WS.sub(" ", first.get(name, "")).strip() for name in names]
    digest = hashlib.sha256("\n".join(parts).encode("utf-8", errors="surrogateescape"))
    return "hash-" + digest.hexdigest()[:32]


def _return_path(value: str | None) -> str | None:
    if value is None:
        return None
    inner = value.strip()
    match = _ANGLE_ID.search(inner)
    if match is not None:
        inner = match.group(1)
    elif inner.startswith("<"):
        inner = inner.strip("<> ")
    return _normalise_address(inner)


def _content_type(value: str) -> str:
    main = value.split(";", 1)[0].strip().strip("\"'").lower()
    return main if "/" in main else ""


def _token(value: str) -> str:
    """First ``;``-separated token, lower case (Auto-Submitted, Precedence)."""
    return _clean_text(value).split(";", 1)[0].strip().lower()


def _message_from_headers(items: Iterable[tuple[str, object]], defects: list[str]) -> Message:
    first: dict[str, str] = {}
    addresses: dict[str, list[str]] = {}
    present: set[str] = set()
    for raw_name, raw_value in items:
        name = str(raw_name).strip().lower()
        if name not in _WANTED:
            continue
        value = _unfold(_header_str(raw_value))
        if name in _ADDRESS_FIELDS:
            addresses.setdefault(name, []).append(value)
        if name in _PRESENCE_BY_LOWER:
            present.add(_PRESENCE_BY_LOWER[name])
        first.setdefault(name, value)

    message_id = _first_id(first.get("message-id", ""))
    if not message_id:
        message_id = _synthetic_id(first)
        defects.append("no Message-ID; synthetic id from Date/From/To/Subject")
    senders = _parse_addresses(addresses.get("from", [])[:1])
    if "from" in first and not senders:
        defects.append(f"unparsable From header: {first['from'][:80]!r}")
    return Message(
        message_id=message_id,
        sender=senders[0] if senders else None,
        to=_parse_addresses(addresses.get("to", [])),
        cc=_parse_addresses(addresses.get("cc", [])),
        reply_to=_parse_addresses(addresses.get("reply-to", [])),
        subject=_clean_text(first.get("subject", "")),
        date=_parse_date(first.get("date", ""), defects),
        in_reply_to=_first_id(first.get("in-reply-to", "")),
        references=_id_list(first.get("references", "")),
        content_type=_content_type(first.get("content-type", "")),
        auto_submitted=_token(first.get("auto-submitted", "")),
        precedence=_token(first.get("precedence", "")),
        list_id=_clean_text(first.get("list-id", "")),
        list_unsubscribe=_clean_text(first.get("list-unsubscribe", "")),
        return_path=_return_path(first.get("return-path")),
        autoreply_headers=tuple(name for name in _PRESENCE_HEADERS if name in present),
        defects=tuple(defects),
    )


def _as_bytes(raw: object) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("utf-8", errors="surrogateescape")
    return b""


def _empty_message(defects: list[str]) -> Message:
    return Message(message_id=_synthetic_id({}), sender=None, defects=tuple(defects))


def parse_headers(raw: bytes) -> Message:
    """Parse a header block (or a whole message, reading only its headers); never raises."""
    data = _as_bytes(raw)
    defects: list[str] = []
    try:
        parsed = BytesHeaderParser(policy=policy.compat32).parsebytes(data)
        defects.extend(type(defect).__name__ for defect in parsed.defects)
        return _message_from_headers(parsed.raw_items(), defects)
    except Exception as exc:  # garbage in must never raise
        log.debug("header parse failed", exc_info=True)
        defects.append(f"header parse failed: {type(exc).__name__}")
        return _empty_message(defects)


# --------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------


def decode_part(payload: bytes, *, charset: str, transfer_encoding: str) -> str:
    """Decode one body part's payload to text; never raises.

    The payload may be truncated anywhere (a partial IMAP fetch): an incomplete
    base64 quantum, QP escape or multibyte character at the end is dropped.
    Charsets: the declared one, then UTF-8, then windows-1252. Line ends become
    ``\\n``. HTML is returned as HTML: pass it to :func:`html_to_text`.
    """
    return _decode_part(payload, charset, transfer_encoding)[0]


def _decode_part(payload: bytes, charset: str, transfer_encoding: str) -> tuple[str, bool]:
    """:func:`decode_part`, plus whether the declared charset had to be abandoned."""
    data = _as_bytes(payload)
    fallback = False
    try:
        encoding = (transfer_encoding or "").strip().strip("\"'").lower()
        if encoding == "base64":
            data = _b64_lenient(data)
        elif encoding == "quoted-printable":
            data = _qp_lenient(data)
        text, fallback = _decode_bytes(data, charset or "", final=False)
    except Exception:
        log.debug("decode_part failed", exc_info=True)
        text, fallback = data.decode("utf-8", errors="replace"), True
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _INVISIBLE.sub("", text), fallback


_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "li",
        "tr",
        "table",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "section",
        "article",
        "header",
        "footer",
        "address",
        "hr",
        "center",
        "form",
        "fieldset",
        "figure",
        "nav",
        "main",
        "aside",
        "tbody",
        "thead",
        "tfoot",
    }
)
_SKIP_TAGS = frozenset({"script", "style", "title", "template", "xml", "svg", "object"})
_PARAGRAPH_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"})
_TAG_RE = re.compile(r"<[^>]*>")


class _HTMLText(HTMLParser):
    """HTML to plain text: drop script/style, keep line breaks, quote blockquotes with '> '."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.skip = 0
        self.quote = 0
        self.pre = 0
        self.bullet = ""

    def _flush(self, *, force: bool = False) -> None:
        text = "".join(self.current)
        if not self.pre:
            text = _WS.sub(" ", text).strip()
        if text or force:
            prefix = "> " * self.quote
            self.lines.append((prefix + self.bullet + text).rstrip() if text else prefix.rstrip())
        self.current = []
        self.bullet = ""

    def _blank(self) -> None:
        self._flush()
        if self.lines and self.lines[-1].strip("> "):
            self.lines.append("> " * self.quote if self.quote else "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
            return
        if tag == "br":
            self._flush(force=True)
        elif tag == "blockquote":
            self._blank()
            self.quote += 1
        elif tag == "pre":
            self._flush()
            self.pre += 1
        elif tag == "li":
            self._flush()
            self.bullet = "- "
        elif tag in _PARAGRAPH_TAGS:
            self._blank()
        elif tag in _BLOCK_TAGS:
            self._flush()
        elif tag in ("td", "th"):
            self.current.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            return
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
            return
        if tag == "blockquote":
            self._flush()
            self.quote = max(0, self.quote - 1)
            self._blank()
        elif tag == "pre":
            self._flush()
            self.pre = max(0, self.pre - 1)
        elif tag in _PARAGRAPH_TAGS:
            self._blank()
        elif tag in _BLOCK_TAGS or tag == "li":
            self._flush()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            pieces = data.split("\n")
            for index, piece in enumerate(pieces):
                if index:
                    self._flush(force=True)
                self.current.append(piece)
        else:
            self.current.append(data)

    def text(self) -> str:
        self._flush()
        return _tidy_lines(self.lines)


def _tidy_lines(lines: list[str]) -> str:
    out: list[str] = []
    for line in lines:
        line = _INVISIBLE.sub("", line.replace("\xa0", " ")).rstrip()
        if not line.strip("> ") and out and not out[-1].strip("> "):
            continue
        out.append(line)
    return "\n".join(out).strip("\n")


def html_to_text(html: str) -> str:
    """Convert HTML to readable plain text; never raises.

    Script, style and title content is dropped; ``<br>``, ``<p>``, ``<div>`` and
    ``<li>`` (and other blocks) become line breaks; ``<blockquote>`` content is
    prefixed with ``> `` so quoted replies can be recognised like plain text.
    """
    parser = _HTMLText()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parser.feed(html)
            parser.close()
        return parser.text()
    except Exception:  # fall back to crude tag stripping
        log.debug("html parse failed", exc_info=True)
        import html as html_module

        text = html_module.unescape(_TAG_RE.sub(" ", html))
        return _tidy_lines([_WS.sub(" ", line).strip() for line in text.splitlines()])


def _unflow(text: str, delsp: bool) -> str:
    """Join format=flowed soft line breaks (RFC 3676), quote depth respected."""
    out: list[str] = []
    buffer = ""
    buffer_depth = -1
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:]
        if body.startswith(" "):
            body = body[1:]  # space-stuffing
        if buffer_depth == depth and buffer:
            buffer += body
        else:
            if buffer_depth >= 0:
                out.append((">" * buffer_depth + " " if buffer_depth else "") + buffer)
            buffer = body
            buffer_depth = depth
        if buffer.endswith(" ") and buffer != "-- ":
            if delsp:
                buffer = buffer[:-1]
            continue
        out.append((">" * depth + " " if depth else "") + buffer)
        buffer = ""
        buffer_depth = -1
    if buffer_depth >= 0:
        out.append((">" * buffer_depth + " " if buffer_depth else "") + buffer)
    return "\n".join(line.rstrip() if line.startswith(">") else line for line in out)


_BOUNDARY_LINE = re.compile(rb"^--([^\s]{1,200}?)(--)?[ \t]*\r?$", re.MULTILINE)


def mime_param(part: EmailMessage, name: str) -> str:
    """A Content-Type parameter as text (RFC 2231 values unpacked); "" when absent."""
    try:
        value = part.get_param(name)
    except Exception:
        return ""
    if isinstance(value, tuple):  # RFC 2231: (charset, language, value)
        value = value[2]
    return _header_str(value) if value else ""


def _part_payload_bytes(part: EmailMessage) -> bytes:
    """The part's body exactly as on the wire (still transfer-encoded).

    ``get_payload(decode=False)`` would decode 8-bit bytes with the declared
    charset and errors="replace", losing them, so the stored payload is read.
    """
    payload = getattr(part, "_payload", None)
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8", errors="surrogateescape")
    return b""


def _is_attachment(part: EmailMessage) -> bool:
    disposition = _header_str(part.get("Content-Disposition", "")).split(";", 1)[0]
    if disposition.strip().lower() == "attachment":
        return True
    return bool(mime_param(part, "name") or _filename(part))


def _filename(part: EmailMessage) -> str:
    try:
        name = part.get_filename()
    except Exception:
        return ""
    return str(name) if name else ""


def _decode_text_part(part: EmailMessage, defects: list[str]) -> str:
    charset = mime_param(part, "charset")
    text, fallback = _decode_part(
        _part_payload_bytes(part),
        charset,
        _header_str(part.get("Content-Transfer-Encoding", "")),
    )
    if fallback:
        defects.append(
            f"{part.get_content_type()} not valid {charset or 'utf-8'}; decoded leniently"
        )
    if mime_param(part, "format").lower() == "flowed":
        text = _unflow(text, mime_param(part, "delsp").lower() == "yes")
    return text


def _recover_multipart(part: EmailMessage, defects: list[str]) -> EmailMessage | None:
    """Re-parse a multipart whose declared boundary is missing or wrong."""
    body = _part_payload_bytes(part)
    match = _BOUNDARY_LINE.search(body)
    if match is None:
        return None
    boundary = match.group(1).decode("ascii", errors="replace").replace('"', "")
    defects.append(f"multipart boundary recovered from body: {boundary[:40]!r}")
    header = f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'.encode()
    try:
        recovered = BytesParser(policy=policy.compat32).parsebytes(header + body)
    except Exception:
        return None
    return recovered if recovered.is_multipart() else None


def _walk(root: EmailMessage, defects: list[str]) -> Iterator[EmailMessage]:
    """Leaf parts worth reading, depth first, skipping attachments and attached messages."""
    stack: list[tuple[EmailMessage, int, bool]] = [(root, 0, False)]
    while stack:
        part, depth, recovered = stack.pop()
        if depth > _MAX_DEPTH:
            defects.append("MIME nesting too deep; rest skipped")
            continue
        maintype = part.get_content_maintype()
        if maintype == "message" and depth > 0:
            continue  # an attached or forwarded message, or a delivery report
        if maintype == "multipart":
            payload = part.get_payload()
            if isinstance(payload, list):
                children = [child for child in payload if isinstance(child, EmailMessage)]
                if part.get_content_subtype() == "alternative":
                    children = _prefer_plain(children)
                for child in reversed(children):
                    stack.append((child, depth + 1, recovered))
                continue
            fixed = None if recovered else _recover_multipart(part, defects)
            if fixed is not None:
                stack.append((fixed, depth + 1, True))
                continue
            defects.append("multipart without parts; body read as text")
            yield part
            continue
        if depth > 0 and _is_attachment(part):
            continue
        yield part


def _prefer_plain(children: list[EmailMessage]) -> list[EmailMessage]:
    """In multipart/alternative keep the plain alternative when there is one."""
    plain = [child for child in children if child.get_content_type() == "text/plain"]
    return plain[:1] if plain else children


def _body_text(parsed: EmailMessage, defects: list[str]) -> str:
    plain: list[str] = []
    html: list[str] = []
    for part in _walk(parsed, defects):
        ctype = part.get_content_type()
        if part.get_content_maintype() == "multipart":  # broken multipart read as text
            text = _decode_text_part(part, defects)
            if text.lstrip().startswith("<") and "</" in text:
                html.append(text)
            else:
                plain.append(text)
        elif ctype == "text/plain":
            plain.append(_decode_text_part(part, defects))
        elif ctype == "text/html":
            html.append(_decode_text_part(part, defects))
    if any(text.strip() for text in plain):
        text = "\n\n".join(text.strip("\n") for text in plain if text.strip())
    elif html:
        text = "\n\n".join(html_to_text(doc) for doc in html)
    else:
        text = ""
    return text[:_MAX_TEXT]


def _mailparser_text(data: bytes, defects: list[str]) -> str:
    """Last resort when the stdlib walk itself failed."""
    try:
        import mailparser

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = mailparser.parse_from_bytes(data)
        plain = [str(text) for text in parsed.text_plain]
        if plain:
            return "\n\n".join(plain)[:_MAX_TEXT]
        return "\n\n".join(html_to_text(str(doc)) for doc in parsed.text_html)[:_MAX_TEXT]
    except Exception as exc:
        defects.append(f"mail-parser failed too: {type(exc).__name__}")
        return ""


def parse_message(raw: bytes) -> Message:
    """Parse a whole message: headers as :func:`parse_headers`, plus its text; never raises."""
    data = _as_bytes(raw)
    defects: list[str] = []
    try:
        parsed = BytesParser(policy=policy.compat32).parsebytes(data)
    except Exception as exc:
        defects.append(f"message parse failed: {type(exc).__name__}")
        return parse_headers(data)
    try:
        for part in parsed.walk():
            defects.extend(type(defect).__name__ for defect in part.defects)
    except Exception:  # very deep nesting; defects are only for logs
        defects.append("MIME tree too deep to list defects")
    try:
        headers = _message_from_headers(parsed.raw_items(), defects)
    except Exception as exc:
        defects.append(f"header parse failed: {type(exc).__name__}")
        headers = _empty_message(defects)
    try:
        text = _body_text(parsed, defects)
    except Exception as exc:
        log.debug("body walk failed", exc_info=True)
        defects.append(f"body walk failed: {type(exc).__name__}; used mail-parser")
        text = _mailparser_text(data, defects)
    return dataclasses.replace(
        headers, text=text.strip("\n"), defects=tuple(dict.fromkeys(defects))
    )


# --------------------------------------------------------------------------
# The writer's own words
# --------------------------------------------------------------------------

_QUOTE_VERBS = (
    r"wrote|a\s+écrit|schrieb|escribió|ha\s+scritto|schreef|escreveu|skrev|kirjoitti|napisał"
)
# Attributions that open with a fixed word ("On", "Le", "Am", ...) or a date: a cut
# point even when no quoted lines follow.
_ATTRIBUTION = re.compile(
    "|".join(
        [
            r"^on\b.{0,300}\bwrote\s*:$",
            r"^le\b.{0,300}\ba\s+écrit\s*:$",
            r"^am\b.{0,300}\bschrieb\b.{0,200}:$",
            r"^el\b.{0,300}\bescribió\s*:$",
            r"^(?:il\s+giorno|il|in\s+data)\b.{0,300}\bha\s+scritto\s*:$",
            r"^op\b.{0,300}\bschreef\b.{0,200}:$",
            r"^(?:em|no\s+dia|na)\b.{0,300}\bescreveu\s*:$",
            r"^den\b.{0,300}\bskrev\b.{0,100}:$",
            r"^\d{4}年\d{1,2}月\d{1,2}日.{0,300}[:\uff1a]$",
            r"^\d{4}/\d{1,2}/\d{1,2}.{0,300}(?:のメール|のメッセージ|wrote)\s*[:\uff1a]$",
        ]
    ),
    re.IGNORECASE,
)
# Looser attributions ("Anna <a@b.example> wrote:", "Anna Müller schrieb am ...:",
# "... のメッセージ:"): dropped only when quoted lines follow.
_WEAK_ATTRIBUTION = re.compile(
    rf"^.{{1,200}}\b(?:{_QUOTE_VERBS})\b.{{0,100}}:$"
    r"|^.{1,300}(?:のメッセージ|は書きました|のメール)\s*[:\uff1a]$",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(
    r"^(?:-{2,}|—+)\s*(?:original\s+message|ursprüngliche\s+nachricht|original-nachricht|"
    r"message\s+d'origine|mensaje\s+original|messaggio\s+originale|oorspronkelijk\s+bericht|"
    r"mensagem\s+original|forwarded\s+message|weitergeleitete\s+nachricht|message\s+transféré|"
    r"mensaje\s+reenviado|messaggio\s+inoltrato|doorgestuurd\s+bericht|"
    r"mensagem\s+encaminhada|original\s+nachricht|元のメッセージ|転送されたメッセージ)"
    r"\s*(?:-{2,}|—+)\s*$"
    r"|^(?:begin\s+forwarded\s+message|anfang\s+der\s+weitergeleiteten\s+nachricht|"
    r"début\s+du\s+message\s+réexpédié|inicio\s+del\s+mensaje\s+reenviado|"
    r"inizio\s+messaggio\s+inoltrato|begin\s+doorgestuurd\s+bericht|"
    r"início\s+da\s+mensagem\s+reencaminhada)\s*:\s*$"
    r"|^_{10,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(
    r"^\*?\s*(?:from|von|de|da|van|från|fra|od|差出人|送信者|发件人)\s*\*?\s*[:\uff1a]\s*\*?\s*\S",
    re.IGNORECASE,
)
_HEADER_OTHER = re.compile(
    r"^\*?\s*(?:sent|date|to|subject|cc|gesendet|datum|an|betreff|envoyé|à|objet|enviado|"
    r"fecha|para|asunto|inviato|data|a|oggetto|verzonden|aan|onderwerp|enviada\s+em|assunto|"
    r"skickat|till|ämne|sendt|til|emne|送信日時|日付|宛先|件名|发送时间|收件人|主题)\s*\*?\s*[:\uff1a]",
    re.IGNORECASE,
)
_KEY_VALUE = re.compile(r"^[*\s>]*[\w .]{1,25}?\s*[:\uff1a]")
_SIGNATURE_DELIMITER = re.compile(r"^(?:--|-- |—|__)\s*$")
_DEVICE = (
    r"(?:(?:the|der|dem|la|el|le|l'|o|de|het|mon|ma|mi|meu|mein|meinem|mijn|mio|il\s+mio|"
    r"dal\s+mio|my)\s+)?"
    r"(?:my|iphone|ipad|android|outlook|yahoo|mail|samsung|galaxy|huawei|xiaomi|blackberry|"
    r"windows|proton|gmail|aol|gmx|web\.de|t-online|telekom|mobile|smartphone|handy|"
    r"móvil|celular|cellulare|telefoon|téléphone|teléfono|telefone|application|app)\b"
)
_MOBILE_SIGNATURE = re.compile(
    r"^(?:"
    rf"sent\s+(?:from|with|via|using)\s+{_DEVICE}"
    r"|get\s+outlook\s+for"
    r"|von\s+meinem\b.{0,40}gesendet"
    rf"|gesendet\s+(?:von|mit|vom|über|from)\s+{_DEVICE}"
    r"|outlook\s+für\s+\w+\s+beziehen"
    rf"|envoyé\s+(?:de|depuis|avec)\s+{_DEVICE}"
    r"|obtenir\s+outlook\s+pour"
    rf"|enviado\s+(?:desde|do|de|con|com)\s+{_DEVICE}"
    r"|obt(?:ener|er\s+o)\s+outlook\s+(?:para|for)"
    rf"|inviato\s+(?:da|dal|dalla|con)\s+{_DEVICE}"
    r"|scarica\s+outlook\s+per"
    rf"|(?:verzonden|verstuurd)\s+(?:vanaf|met|vanuit|via)\s+{_DEVICE}"
    r"|download\s+outlook\s+voor"
    r"|.{1,30}から送信"
    r"|outlook\s*for\s*(?:ios|android)\s*を入手"
    r").{0,40}$",
    re.IGNORECASE,
)
_CLOSING = re.compile(
    r"^(?i:thanks|thank\s+you|many\s+thanks|thanks\s+again|thx|cheers|best|best\s+regards|"
    r"kind\s+regards|warm\s+regards|warmest\s+regards|regards|best\s+wishes|all\s+the\s+best|"
    r"sincerely|yours|yours\s+sincerely|yours\s+truly|love|take\s+care|"
    r"liebe\s+grüße|liebe\s+grüsse|viele\s+grüße|viele\s+grüsse|beste\s+grüße|beste\s+grüsse|"
    r"herzliche\s+grüße|schöne\s+grüße|freundliche\s+grüße|mit\s+freundlichen\s+grüßen|"
    r"mit\s+freundlichen\s+grüssen|grüße|gruß|gruss|lg|vg|mfg|danke|vielen\s+dank|"
    r"cordialement|bien\s+cordialement|bien\s+à\s+vous|merci|merci\s+beaucoup|amitiés|"
    r"bonne\s+journée|salutations|"
    r"saludos|un\s+saludo|saludos\s+cordiales|atentamente|gracias|muchas\s+gracias|"
    r"cordiali\s+saluti|saluti|un\s+saluto|grazie|grazie\s+mille|distinti\s+saluti|"
    r"met\s+vriendelijke\s+groet(?:en)?|vriendelijke\s+groet(?:en)?|groetjes|groeten|"
    r"hartelijke\s+groet(?:en)?|bedankt|dank\s+je(?:\s+wel)?|"
    r"atenciosamente|abraços|obrigad[oa]|cumprimentos|"
    r"よろしくお願いします|よろしくお願いいたします|よろしくお願い致します)"
    r"(?i:\s+(?:so\s+much|a\s+lot|again|in\s+advance|very\s+much|a\s+million))?"
    r"[\s,.!。\uff01]*(?:[A-ZÀ-ÖØ-Þ][\w.'-]*(?:\s+[A-ZÀ-ÖØ-Þ][\w.'-]*)?)?[\s,.!。\uff01]*$"
)
_OWN_TEXT_MAX = 100_000  # characters of a body searched for the writer's own words
_MAX_CLOSING_TAIL = 5  # lines after a closing (name, company, phone) still cut


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _attribution_at(lines: list[str], index: int) -> tuple[int, bool]:
    """Lines (1-3) forming an attribution at ``index`` and whether it is a strong one."""
    first = lines[index].strip()
    if _ATTRIBUTION.match(first):
        return 1, True
    if _WEAK_ATTRIBUTION.match(first):
        return 1, False
    # Clients wrap long attributions; join at most two more lines, never across
    # the end of a sentence.
    joined = first
    for span in (1, 2):
        if index + span >= len(lines) or joined.endswith((".", "!", "?", "。")):
            break
        piece = lines[index + span].strip()
        if not piece or _is_quoted(lines[index + span]) or len(joined) > 400:
            break
        joined = f"{joined} {piece}"
        if _ATTRIBUTION.match(joined):
            return span + 1, True
    return 0, False


def _outlook_block_at(lines: list[str], index: int) -> bool:
    if not _HEADER_FROM.match(lines[index].strip()):
        return False
    return any(_HEADER_OTHER.match(follow.strip()) for follow in lines[index + 1 : index + 6])


def _next_content_is_quoted(lines: list[str], index: int) -> bool:
    for line in lines[index:]:
        if line.strip():
            return _is_quoted(line)
    return True  # nothing follows: the attribution is all there is


def _line_rules(text: str) -> list[str]:
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if _is_quoted(line):
            index += 1
            continue
        if stripped:
            span, strong = _attribution_at(lines, index)
            if span:
                if _next_content_is_quoted(lines, index + span):
                    index += span  # bottom or inline posting: drop it, keep reading
                    continue
                if strong:
                    break
            if _SEPARATOR.match(stripped) or _outlook_block_at(lines, index):
                break
            if _SIGNATURE_DELIMITER.match(line.rstrip("\r")) or _MOBILE_SIGNATURE.match(stripped):
                break
        out.append(line.rstrip())
        index += 1
    return out


# Every branch of mailparser_reply's quote-header pattern needs one of these (its
# "-----Original Message-----" branch the dashes, all others a colon); checked by a test.
_LIBRARY_NEEDS = (":", "\uff1a", "-----")


@lru_cache(maxsize=1)
def _reply_header_regex() -> re.Pattern[str] | None:
    """mailparser_reply's quote-header regex for every language but Polish.

    Polish is left out: its "from" header pattern needs a single line such as
    "Do: ..." or "Data: ...", which cuts ordinary customer text.
    """
    try:
        from mailparser_reply.constants import MAIL_LANGUAGES
        from mailparser_reply.parser import EmailMessage as ReplyMessage

        languages = [code for code in MAIL_LANGUAGES if code != "pl"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pattern = ReplyMessage(text="", languages=languages).HEADER_REGEX
        return pattern if isinstance(pattern, re.Pattern) else None
    except Exception:  # the library is a safety net, not a requirement
        log.warning("mailparser_reply unavailable; using own quote rules only", exc_info=True)
        return None


_LIBRARY_MAX_LINES = 300
_LIBRARY_MAX_LINE = 200  # its regexes are quadratic on long lines


def _library_cut(lines: list[str]) -> list[str]:
    """Cut at the first quote header mailparser_reply finds that looks like one.

    A match made only of "Key: value" lines is accepted when one of them is a
    From-like line ("From:", "Von:", "De :", ...): the library alone also
    splits at two lines such as "Date: ..." and "To: ..." in an order question.
    Only the first lines, each shortened, are shown to the library; the cut is
    made at the start of the line where its match begins.
    """
    pattern = _reply_header_regex()
    if pattern is None:
        return lines
    probe = "\n".join(line.strip()[:_LIBRARY_MAX_LINE] for line in lines[:_LIBRARY_MAX_LINES])
    if not any(mark in probe for mark in _LIBRARY_NEEDS):
        return lines  # no branch of the library's pattern can match; it costs ~0.35 ms to ask
    for match in pattern.finditer(probe):
        found = [line.strip().lstrip("> ") for line in match.group().strip().split("\n")]
        if (
            found
            and _KEY_VALUE.match(found[0])
            and not any(
                _HEADER_FROM.match(line) or re.match(r"^(?:de|da|od)\s+:", line, re.IGNORECASE)
                for line in found
            )
        ):
            continue
        begin = match.start()
        while begin < len(probe) and probe[begin] == "\n":
            begin += 1
        kept = lines[: probe.count("\n", 0, begin)]
        if not any(line.strip() for line in kept):
            return lines  # the library would leave nothing: trust our own rules
        return kept
    return lines


def _cut_closing(lines: list[str]) -> list[str]:
    content = [i for i, line in enumerate(lines) if line.strip()]
    if len(content) < 2:
        return lines
    last = content[-1]
    for position in range(len(content) - 1, max(-1, len(content) - 2 - _MAX_CLOSING_TAIL), -1):
        index = content[position]
        if position == 0:
            break
        stripped = lines[index].strip()
        if _CLOSING.match(stripped):
            tail = [lines[i].strip() for i in content[position + 1 :]]
            if all(len(item) <= 60 for item in tail):
                return lines[:index]
            break
        if index != last and len(stripped) > 60:
            break
    return lines


@lru_cache(maxsize=64)
def own_text(text: str) -> str:
    """The writer's own new words, line breaks kept.

    Cached: ingestion asks for it up to four times per message (opt-out, snippet,
    negative tone); the profile of a 20,000-message backfill showed 39% of the time
    here, a third of it in mail-parser-reply's all-language header regex.

    Drops lines quoted with ``>``, attribution lines ("On ... wrote:",
    "Le ... a écrit :", "Am ... schrieb ...:", "El ... escribió:", "Il giorno
    ... ha scritto:", "Op ... schreef ...:", Japanese), Outlook's
    "From:/Sent:/To:/Subject:" block and "-----Original Message-----"
    separators, forwarded-message markers, signatures ("-- ", "Sent from my
    iPhone", "Get Outlook for iOS", ...) and a closing ("Thanks, Anna") with the
    few short lines after it. An attribution directly followed by quoted lines
    is dropped with them and reading continues, so bottom-posted and inline
    answers are kept.

    mailparser_reply's header regex then cuts at any quote header these rules
    missed. Its signature rules are not used: with all languages they cut at
    any line starting "Tak" (Danish "thanks", so also "Take me off ..."), at a
    "- item" list, or at "Thanks," in the middle of a message.
    """
    if not text:
        return ""
    text = text[:_OWN_TEXT_MAX].replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", text.replace("\xa0", " "))
    lines = _line_rules(text)
    lines = _library_cut(lines)
    lines = _cut_closing(lines)
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def snippet(text: str, limit: int = 160) -> str:
    """One line of the writer's own new words, at most ``limit`` characters.

    Quotes and signatures are dropped (see :func:`own_text`), whitespace is
    collapsed, and a long text is cut on a word boundary ending with "…".
    """
    try:
        words = _WS.sub(" ", own_text(text)).strip()
    except Exception:
        log.debug("snippet failed", exc_info=True)
        words = _WS.sub(" ", text or "").strip()
    if limit <= 0:
        return ""
    if len(words) <= limit:
        return words
    if limit == 1:
        return "…"
    cut = words[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    cut = cut.rstrip(" ,;:.-\u2013\u2014")
    return cut + "…"
