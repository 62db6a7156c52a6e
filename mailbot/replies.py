"""The owner's reply to a draft -> the owner's own words, a leak check, a command (pure).

DESIGN section 3, steps 3 to 6. Nothing here does I/O, reads the clock or logs; every
function takes text (or bytes) and returns values. The daemon (commands.py) finds the
draft by :func:`tokens_referenced`, authenticates the reply, then calls
:func:`reply_text`, :func:`extract`, :func:`parse_command` and :func:`leak_problems`.

How the owner's words are found (:func:`extract`), by mailbot's own rules only:

1. **Cut at the marker.** A draft email starts with :data:`mailbot.digest.MARKER`, so
   every quoting style (Gmail's ``>`` quote, Outlook's unquoted top-posted copy, an
   HTML blockquote) puts the owner's own text above the first marker line. The marker
   is matched on its distinctive words ("Reply above this line" ... "mailbot"), across
   a client's re-wrapping, quote prefixes and mangled box-drawing characters.
2. **Check the quoted draft.** Below the marker, the quoted words must be exactly the
   instruction lines, the draft text and the private context (compared word by word,
   so re-wrapping does not matter). Anything else (an edit inside the quoted draft,
   text between its lines, a quote cut short) makes the extraction *doubtful*:
   an owner who edits inside the quote expects the edit to be sent. The instruction
   lines are taken from digest.draft_body itself; a confirmation request
   (notes.confirm_body: marker, instructions, the note, no private part) is accepted
   too. When the caller has no private context, the quoted private part is still
   required to run from PRIVATE_HEADING to the canary.
3. **Text after the quote** (bottom-posting, inline answers): unquoted lines below the
   marker are the owner's words too; they are extracted, and the extraction is doubtful.
4. **Remove the quote header** just above the marker by mailbot's own tokens: the
   paragraph holding the display name ``mailbot (<first name>)``, the draft's subject,
   the token or a ``mailbot.`` message id (strong tokens), or the owner's address or
   name in a line ending with ``:`` (weak tokens, for clients that show the address-book
   name). Header-field lines of any language ("Sent:", "Gesendet:", "Envoyé :") and
   separator rules ("____", "-----Original Message-----") next to it go with it.
   Per-language "On ... wrote:" patterns are never used on their own: a paragraph
   that looks like a header but carries none of mailbot's tokens stays in the text and
   makes the extraction doubtful.
5. Lines quoted with ``>`` are dropped; a trailing mobile signature ("Sent from my
   iPhone", "Get Outlook for iOS", ...) is removed; a first line "Subject: ..." becomes
   :attr:`Extraction.subject_override`.
6. The result is checked with :func:`leak_problems`; any problem makes it doubtful.

Doubtful extractions are never sent: the caller asks the owner (DESIGN 3.5).

Commands (:func:`parse_command`): an empty reply, "send", "yes", "ok", "okay", "y"
and 👍 all return :attr:`CommandKind.SEND_DRAFT`. **parse_command never returns
:attr:`CommandKind.YES`**: whether "yes" means "send the draft" or "yes, send what you
asked me about" depends on which email was answered (a draft or a confirmation
request), which only the caller knows; the caller treats ``SEND_DRAFT`` as the plain
"yes" a confirmation request waits for. ``YES`` stays in the enum for callers that
want to record that meaning.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email import policy
from email.message import Message as StdMessage
from email.parser import BytesParser
from enum import StrEnum
from functools import lru_cache

from mailbot.digest import CANARY_PREFIX, MARKER, PRIVATE_HEADING, SPARK_CHARS, draft_body
from mailbot.drafting import first_name_of
from mailbot.models import MAILBOT_ID_PREFIX, Pick, Reason
from mailbot.parse import decode_part, html_to_text, mime_param

__all__ = [
    "Command",
    "CommandKind",
    "DraftRef",
    "Extraction",
    "extract",
    "leak_problems",
    "parse_command",
    "reply_text",
    "tokens_referenced",
]


@dataclass(frozen=True)
class DraftRef:
    """What the drafts table holds for one draft (or one confirmation request)."""

    token: str  # >=128-bit URL-safe token, also in the Message-ID "mailbot.draft.<token>@..."
    contact: str  # customer address
    contact_name: str
    text: str  # the draft text as sent in the draft email
    private_context: str  # the text below PRIVATE_HEADING, including the canary line
    subject: str  # the draft email's subject
    note_subject: str  # the subject the note to the customer will carry


@dataclass(frozen=True)
class Extraction:
    """The owner's own words from a reply, and whether mailbot is sure of them."""

    text: str  # the owner's own words, exactly, trimmed of surrounding blank lines; "" if none
    doubtful: bool
    why: tuple[str, ...]  # human reasons for doubt
    subject_override: str  # from a first line "Subject: ..." (removed from text), "" otherwise


class CommandKind(StrEnum):
    SEND_DRAFT = "send_draft"  # empty reply, send, yes, ok, okay, y, 👍
    SEND_TEXT = "send_text"  # the owner wrote their own note
    SKIP = "skip"
    SNOOZE = "snooze"
    NEVER = "never"
    NOT_CUSTOMER = "not_customer"
    DONE = "done"
    UNDO = "undo"
    YES = "yes"  # never returned by parse_command; see the module docstring
    SEND_ANYWAY = "send_anyway"  # for customers who opted out
    UNKNOWN = "unknown"  # a short reply mailbot does not understand: ask, never send


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    days: int = 0  # SNOOZE only
    text: str = ""  # SEND_TEXT: the note; UNKNOWN: what the owner wrote
    note: str = ""  # why UNKNOWN, or what was read ("empty reply", "snooze 2w")


# --------------------------------------------------------------------------- references

_MAILBOT_ID = re.compile(
    re.escape(MAILBOT_ID_PREFIX)
    + r"([a-z][a-z0-9-]{0,30})\.([A-Za-z0-9_-]{22,128})@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)
_BRACKETED = re.compile(r"<([^<>]*)>")


def _ids(value: str) -> list[str]:
    found = [item.strip() for item in _BRACKETED.findall(value)]
    if not found:
        found = value.split()
    return [item for item in found if item]


def tokens_referenced(in_reply_to: str, references: Sequence[str]) -> list[tuple[str, str]]:
    """``(kind, token)`` for every mailbot Message-ID referenced, nearest first.

    In-Reply-To comes first, then References from last (the parent) to first (the
    root). Each element of ``references`` may hold one id or several (a folded header).
    Ids that do not have mailbot's exact shape are ignored; duplicates are listed once.
    """
    ordered = _ids(in_reply_to or "")
    refs: list[str] = []
    for item in references or ():
        refs.extend(_ids(str(item)))
    ordered.extend(reversed(refs))
    out: list[tuple[str, str]] = []
    for mid in ordered:
        match = _MAILBOT_ID.fullmatch(mid)
        if match is None:
            continue
        pair = (match.group(1), match.group(2))
        if pair not in out:
            out.append(pair)
    return out


# --------------------------------------------------------------------------- reply body

_MAX_DEPTH = 30
_MAX_TEXT = 1_000_000
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff\u00ad\x00]")
# Where a client's quoted original begins in its HTML (everything after it is quoted):
# Gmail's div.gmail_quote, Outlook web's appendonsend / divRplyFwdMsg, Outlook
# desktop's top-bordered header div, Thunderbird's cite prefix, Yahoo's quoted div.
_HTML_QUOTE_START = re.compile(
    r"<[a-z][a-z0-9]*\b[^>]*?(?:"
    r"\bid\s*=\s*[\"']?(?:divRplyFwdMsg|appendonsend)\b"
    r"|\bclass\s*=\s*[\"'][^\"']*\b(?:gmail_quote|moz-cite-prefix|yahoo_quoted)\b"
    r"|\bstyle\s*=\s*[\"'][^\"']*border\s*:\s*none\s*;\s*border-top\s*:\s*solid"
    r")[^>]*>",
    re.IGNORECASE,
)


_WORD_HTML = re.compile(r"<p\b[^>]*\bclass\s*=\s*[\"']?Mso", re.IGNORECASE)
_P_START = re.compile(r"<p\b[^>]*>", re.IGNORECASE)
_P_END = re.compile(r"</p\s*>", re.IGNORECASE)


def _payload_bytes(part: StdMessage) -> bytes:
    payload = part.get_payload()
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8", errors="surrogateescape")
    return b""


def _is_attachment(part: StdMessage) -> bool:
    disposition = str(part.get("Content-Disposition", "")).split(";", 1)[0]
    if disposition.strip().lower() == "attachment":
        return True
    try:
        filename = part.get_filename()
    except Exception:
        filename = None
    return bool(filename or mime_param(part, "name"))


def _text_parts(root: StdMessage) -> Iterator[StdMessage]:
    stack: list[tuple[StdMessage, int]] = [(root, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > _MAX_DEPTH:
            continue
        maintype = part.get_content_maintype()
        if maintype == "multipart":
            payload = part.get_payload()
            if isinstance(payload, list):
                children = [child for child in payload if isinstance(child, StdMessage)]
                stack.extend((child, depth + 1) for child in reversed(children))
            continue
        if maintype != "text" or (depth > 0 and _is_attachment(part)):
            continue  # attachments, attached messages, delivery reports
        yield part


def _unflow(text: str, delsp: bool) -> str:
    """Join RFC 3676 (format=flowed) soft line breaks, keeping quote depth."""
    out: list[str] = []
    buffer: str | None = None
    buffer_depth = 0

    def emit(depth: int, body: str) -> None:
        out.append((">" * depth + " " + body if body else ">" * depth) if depth else body)

    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:]
        if body.startswith(" "):
            body = body[1:]  # space-stuffing
        if buffer is not None and depth == buffer_depth:
            buffer += body
        else:
            if buffer is not None:
                emit(buffer_depth, buffer)
            buffer, buffer_depth = body, depth
        if body.endswith(" ") and body != "-- ":
            if delsp:
                buffer = buffer[:-1]
            continue
        emit(buffer_depth, buffer)
        buffer = None
    if buffer is not None:
        emit(buffer_depth, buffer)
    return "\n".join(out)


def _html_reply_to_text(html: str) -> str:
    """:func:`mailbot.parse.html_to_text`, with the client's quoted original ``> ``-quoted.

    Blockquotes are quoted by html_to_text itself; the quote-start elements of
    :data:`_HTML_QUOTE_START` are not blockquotes, so a blockquote is opened before the
    first of them and closed at the end of the document.
    """
    if _WORD_HTML.search(html):
        # Word-generated HTML (Outlook desktop): every line is a <p> with no margin, an
        # empty line a <p> holding &nbsp;. Read each paragraph as one line.
        html = _P_END.sub("<br>", _P_START.sub("", html))
    match = _HTML_QUOTE_START.search(html)
    if match is not None:
        html = f"{html[: match.start()]}<blockquote>{html[match.start() :]}</blockquote>"
    return html_to_text(html)


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _INVISIBLE.sub("", text.replace("\xa0", " "))


def _reply_text(raw: bytes) -> tuple[str, bool]:
    parsed = BytesParser(policy=policy.compat32).parsebytes(raw)
    plain: list[str] = []
    htmls: list[str] = []
    for part in _text_parts(parsed):
        subtype = part.get_content_subtype()
        if subtype not in ("plain", "html"):
            continue
        text = decode_part(
            _payload_bytes(part),
            charset=mime_param(part, "charset"),
            transfer_encoding=str(part.get("Content-Transfer-Encoding", "")),
        )
        if subtype == "plain":
            if mime_param(part, "format").lower() == "flowed":
                text = _unflow(text, mime_param(part, "delsp").lower() == "yes")
            plain.append(text)
        else:
            htmls.append(text)
    if any(text.strip() for text in plain):
        body = "\n".join(text.strip("\n") for text in plain if text.strip())
        return _clean(body)[:_MAX_TEXT], False
    if htmls:
        body = "\n\n".join(_html_reply_to_text(doc) for doc in htmls)
        return _clean(body)[:_MAX_TEXT], True
    return "", False


def reply_text(raw: bytes) -> tuple[str, bool]:
    """The owner's reply body and whether it came from HTML; never raises.

    text/plain is preferred (format=flowed is unflowed); HTML is converted only when
    there is no plain part, with blockquotes and the quoted original (Gmail's
    div.gmail_quote, Outlook's divRplyFwdMsg or top-bordered header) quoted with
    ``> ``. Attachments and attached messages are skipped.
    """
    try:
        return _reply_text(bytes(raw))
    except Exception:
        try:
            return _clean(bytes(raw).decode("utf-8", errors="replace"))[:_MAX_TEXT], False
        except Exception:
            return "", False


# --------------------------------------------------------------------------- words


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _words(text: str) -> list[str]:
    """Lower-case words without punctuation, for the leak check."""
    return re.findall(r"\w+", _nfkc(text).casefold())


def _tokens(text: str) -> list[str]:
    """Whitespace-separated pieces, exact, for comparing the quoted draft."""
    return _nfkc(text).split()


def _squash(text: str) -> str:
    return " ".join(_nfkc(text).casefold().split())


# --------------------------------------------------------------------------- marker

_SEP = r"(?:[ \t]+|[ \t]*\n[ \t>]*)"
_MARKER_RE = re.compile(
    rf"reply{_SEP}above{_SEP}this{_SEP}line[^A-Za-z0-9]{{0,24}}?mailbot", re.IGNORECASE
)
_QUOTE_PREFIX = re.compile(r"^[ \t]*(?:>[ \t]?)+")
# box-drawing rules, dashes and dots, and the "?" or U+FFFD a lossy charset leaves of them
_DECORATION = re.compile("^[\\s>\u2500\u2501\u2014\u2013\\-_=\u00b7\u2022.*?\ufffd]*$")


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _dequote(line: str) -> str:
    return _QUOTE_PREFIX.sub("", line)


_NAME = "QQMAILBOTNAMEQQ"


@lru_cache(maxsize=1)
def _instruction_template() -> str:
    """The instruction lines of a draft email, from digest.draft_body itself.

    Built with sentinel values so that a change of wording in digest.py is followed
    here; the customer's name is :data:`_NAME`.
    """
    text, private = "QQMAILBOTTEXTQQ", "QQMAILBOTPRIVQQ"
    pick = Pick(contact="x@x.example", name=_NAME, reason=Reason.NO_REASON, why="", score=0.0)
    body = draft_body(pick, text, private)
    return " ".join(_tokens(body.split(MARKER, 1)[-1].split(text, 1)[0]))


@lru_cache(maxsize=1)
def _draft_instruction() -> re.Pattern[str]:
    """The instruction lines as quoted (words joined by one space); any name."""
    return re.compile(re.escape(_instruction_template()).replace(_NAME, ".{1,200}?"), re.DOTALL)


# notes.confirm_body (a confirmation request asking the owner for a plain "yes")
_CONFIRM_INSTRUCTION = re.compile(
    r'Reply "[^"]{1,40}" to send exactly the note below to .{1,200}?\. '
    r'Reply "skip" to drop it\. Nothing is sent until you answer\. '
    r"Why I am asking: .{0,4000}?The note, exactly as it would be sent:",
    re.DOTALL,
)

_MARKER_PHRASES: tuple[tuple[str, ...], ...] = (
    ("reply", "above", "this", "line"),
    ("for", "you", "only", "never", "sent"),
    ("to", "send", "exactly", "the", "note", "below", "to"),
    ("nothing", "is", "sent", "until", "you", "answer"),
    ("the", "note", "exactly", "as", "it", "would", "be", "sent"),
)


@lru_cache(maxsize=1)
def _instruction_phrases() -> tuple[tuple[str, ...], ...]:
    """Runs of 4+ words of the draft's instruction lines (the name left out)."""
    phrases = list(_MARKER_PHRASES)
    for piece in _instruction_template().split(_NAME):
        for sentence in re.split(r"[.:]", piece):
            words = tuple(_words(sentence))
            if len(words) >= 4:
                phrases.append(words)
    phrases.append(tuple(_words(MARKER)))
    phrases.append(tuple(_words(PRIVATE_HEADING)))
    return tuple(dict.fromkeys(phrases))


# --------------------------------------------------------------------------- the quote header

_COLON = ":\uff1a"  # and the full-width colon
_HEADER_FIELD = re.compile(r"^\s*\*?\s*[^\W\d_][\w .'\u2019-]{0,30}?\s*\*?\s*[" + _COLON + "]")
_SEPARATOR = re.compile(
    r"^\s*(?:_{5,}|-{5,}|={5,}|—{3,}|─{3,}|\*{5,}|-{2,}\s*[^-\n]{1,60}?\s*-{2,})\s*$"
)
_ENDS_WITH_COLON = re.compile("[" + _COLON + "]\\s*$")
_DIGIT = re.compile(r"\d")


class _Tokens:
    """mailbot's own tokens, found in a quote header."""

    def __init__(self, draft: DraftRef, owner_addresses: Sequence[str], owner_name: str) -> None:
        strong: list[str] = [r"\bmailbot\s*\(", re.escape(MAILBOT_ID_PREFIX) + r"[a-z]+\.\S{8}"]
        first = first_name_of(owner_name)
        if first:
            strong.append(r"\bmailbot\s*\(\s*" + re.escape(first) + r"\s*\)")
        subject = " ".join(draft.subject.split())
        if len(subject) >= 6:
            strong.append(r"\s+".join(re.escape(word) for word in subject.split()))
        if len(draft.token) >= 8:
            strong.append(re.escape(draft.token))
        weak: list[str] = []
        for address in owner_addresses:
            address = address.strip()
            if address:
                weak.append(re.escape(address))
        name_words = owner_name.split()
        if name_words and len(" ".join(name_words)) >= 3:
            weak.append(r"\b" + r"\s+".join(re.escape(w) for w in name_words) + r"\b")
        self.strong = re.compile("|".join(strong), re.IGNORECASE)
        self.weak = re.compile("|".join(weak), re.IGNORECASE) if weak else None

    def _lines_hit(self, pattern: re.Pattern[str] | None, lines: Sequence[str]) -> set[int]:
        if pattern is None:
            return set()
        joined = "\n".join(_dequote(line) for line in lines)
        hit: set[int] = set()
        for match in pattern.finditer(joined):
            first = joined.count("\n", 0, match.start())
            last = joined.count("\n", 0, max(match.start(), match.end() - 1))
            hit.update(range(first, last + 1))
        return hit

    def strong_lines(self, lines: Sequence[str]) -> set[int]:
        return self._lines_hit(self.strong, lines)

    def weak_lines(self, lines: Sequence[str]) -> set[int]:
        """Lines with the owner's address or name that read like a header line."""
        return {
            i
            for i in self._lines_hit(self.weak, lines)
            if _HEADER_FIELD.match(_dequote(lines[i]))
            or _ENDS_WITH_COLON.search(lines[i])
            or "<" in lines[i]
        }


def _header_like(line: str) -> bool:
    return bool(
        _HEADER_FIELD.match(line) or _SEPARATOR.match(line) or _ENDS_WITH_COLON.search(line)
    )


def _remove_quote_header(lines: list[str], tokens: _Tokens, why: list[str]) -> list[str]:
    """The lines above the marker without the client's quote header and quoted lines."""
    i = len(lines) - 1
    while i >= 0 and (not lines[i].strip() or _is_quoted(lines[i])):
        i -= 1
    adjacent = [line for line in lines[i + 1 :] if _is_quoted(line)]
    header_was_quoted = bool(tokens.strong_lines(adjacent) or tokens.weak_lines(adjacent))
    j = i
    while j >= 0 and lines[j].strip() and not _is_quoted(lines[j]):
        j -= 1
    para = lines[j + 1 : i + 1]
    cut = i + 1  # lines[cut:] are header, blank or quoted: dropped
    # The paragraph is examined even when the client quoted its own header just above
    # the marker (HTML clients, iPhone): in a reply to the owner's own earlier reply it
    # is the attribution of that earlier reply, and then it must read like one.
    if para:
        strong = tokens.strong_lines(para)
        weak = tokens.weak_lines(para)
        attribution = bool(_ENDS_WITH_COLON.search(para[-1]))
        if header_was_quoted:
            is_header = bool(strong or weak) and attribution
        else:
            is_header = bool(strong) or (bool(weak) and attribution)
        if is_header:
            covered = strong | weak
            h = min(covered)
            while h > 0 and (_HEADER_FIELD.match(para[h - 1]) or _SEPARATOR.match(para[h - 1])):
                h -= 1
            strange = [
                line.strip()
                for k, line in enumerate(para[h:], h)
                if k not in covered and not _header_like(line)
            ]
            if strange:
                why.append(f'a line in the quote header was not recognised: "{strange[0][:80]}"')
            if h > 0 and not _SEPARATOR.match(para[h]):
                why.append(
                    "text runs straight into the quote header, so where the header begins "
                    "is uncertain"
                )
            cut = j + 1 + h
            k = cut - 1  # a separator rule (and blank lines) right above the header
            while k >= 0 and (not lines[k].strip() or _SEPARATOR.match(lines[k])):
                if lines[k].strip():
                    cut = k
                k -= 1
        elif (
            attribution
            or any(_SEPARATOR.match(line) for line in para)
            or (
                sum(1 for line in para if _HEADER_FIELD.match(line)) >= 2
                and any(_DIGIT.search(line) for line in para)
            )
        ):
            why.append(
                "the lines just above the quoted draft look like a quote header without "
                "mailbot's name, address or subject"
            )
    kept = lines[:cut]
    if any(_is_quoted(line) for line in kept):
        why.append('lines quoted with ">" above the draft were left out')
    return _drop_quoted(kept)


def _drop_quoted(lines: list[str]) -> list[str]:
    """Lines without those quoted with ``>``, leaving one blank line where they were."""
    out: list[str] = []
    dropped = False
    for line in lines:
        if _is_quoted(line):
            dropped = True
            continue
        if dropped and not line.strip() and out and not out[-1].strip():
            continue
        dropped = dropped and not line.strip()
        out.append(line)
    return out


# --------------------------------------------------------------------------- signatures

_DEVICE = (
    r"(?:(?:the|der|dem|la|el|le|l'|o|mon|ma|mi|meu|mein|meinem|mijn|mio|il\s+mio|my)\s+)?"
    r"(?:my|iphone|ipad|android|outlook|yahoo|mail|samsung|galaxy|huawei|xiaomi|blackberry|"
    r"windows|proton|gmail|aol|gmx|web\.de|mobile|smartphone|handy|móvil|celular|cellulare|"
    r"telefoon|téléphone|teléfono|telefone|phone|application|app)\b"
)
_MOBILE_SIGNATURE = re.compile(
    r"^(?:"
    rf"sent\s+(?:from|with|via|using)\s+{_DEVICE}"
    r"|get\s+outlook\s+for"
    r"|von\s+meinem\b.{0,40}\bgesendet"
    rf"|gesendet\s+(?:von|mit|vom|über|from)\s+{_DEVICE}"
    r"|outlook\s+für\s+\w+\s+beziehen"
    rf"|envoyé\s+(?:de|depuis|avec|à\s+partir\s+de)\s+{_DEVICE}"
    r"|obtenir\s+outlook\s+pour"
    rf"|enviado\s+(?:desde|do|de|con|com)\s+{_DEVICE}"
    r"|obt(?:ener|er\s+o)\s+outlook\s+(?:para|for)"
    rf"|inviato\s+(?:da|dal|dalla|con)\s+{_DEVICE}"
    rf"|(?:verzonden|verstuurd)\s+(?:vanaf|met|vanuit|via)\s+{_DEVICE}"
    r")[^\n]{0,60}$",
    re.IGNORECASE,
)
_SIGNATURE_DELIMITER = re.compile(r"^--\s?$")


def _trim(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _drop_mobile_signature(lines: list[str]) -> list[str]:
    lines = _trim(lines)
    if lines and _MOBILE_SIGNATURE.match(lines[-1].strip()):
        lines = _trim(lines[:-1])
        if lines and _SIGNATURE_DELIMITER.match(lines[-1]):
            lines = _trim(lines[:-1])
    return lines


# --------------------------------------------------------------------------- the quoted draft


@dataclass
class _Region:
    """What is below the marker: the check of the quoted draft, and the owner's lines."""

    why: list[str]
    after: list[str]


def _find_run(haystack: list[str], needle: list[str]) -> int:
    if not needle:
        return -1
    sep = "\x00"
    joined = sep + sep.join(haystack) + sep
    at = joined.find(sep + sep.join(needle) + sep)
    return -1 if at < 0 else joined.count(sep, 0, at)


def _unverified_private_part(words: list[str], start: int) -> list[str]:
    """The private part's words as quoted, heading to canary, when the caller had none."""
    heading = _tokens(PRIVATE_HEADING)
    if words[start : start + len(heading)] != heading:
        return []
    for index in range(start + len(heading), len(words)):
        if words[index].startswith(CANARY_PREFIX):
            return words[start : index + 1]
    return []


def _check_region(
    marker_rest: str, lines: list[str], quoted_style: bool, draft: DraftRef
) -> _Region:
    """Compare the quote below the marker with the draft; collect the owner's lines there.

    ``marker_rest`` is what follows the marker on its own line; ``lines`` come after.
    With a ``>`` quote, unquoted lines are the owner's (bottom-posting or inline); in
    an unquoted copy (Outlook) the owner's lines are whatever follows the draft's end.
    """
    why: list[str] = []
    words: list[str] = _tokens(marker_rest)
    where: list[tuple[int, int]] = [(-1, position) for position in range(len(words))]
    chunks: list[list[str]] = [[]]
    for index, line in enumerate(lines):
        if quoted_style and not _is_quoted(line):
            chunks[-1].append(line)
            continue
        if chunks[-1]:
            chunks.append([])
        for position, token in enumerate(_tokens(_dequote(line))):
            words.append(token)
            where.append((index, position))
    after: list[str] = []
    for chunk in chunks:
        chunk = _trim(chunk)
        if chunk:
            after.extend([""] if after else [])
            after.extend(chunk)
    skip = 0
    while skip < len(words) and _DECORATION.match(words[skip]):
        skip += 1  # the rest of a wrapped marker line ("───")
    words, where = words[skip:], where[skip:]

    text_words = _tokens(draft.text)
    at = _find_run(words, text_words)
    end = -1
    if at < 0:
        why.append("the quoted draft was edited (its text is not quoted as it was sent)")
    else:
        above = " ".join(words[:at])
        confirm = bool(_CONFIRM_INSTRUCTION.fullmatch(above))
        if not confirm and not _draft_instruction().fullmatch(above):
            why.append("the quoted draft was edited (the lines above the draft text changed)")
        end = at + len(text_words)
        private_words = [] if confirm else _tokens(draft.private_context)
        if not private_words and not confirm:
            private_words = _unverified_private_part(words, end)
        if private_words:
            if words[end : end + len(private_words)] == private_words:
                end += len(private_words)
            else:
                why.append("the quoted draft was edited (its private part changed)")
                end = -1
    if end >= 0 and end < len(words):
        if quoted_style:
            why.append("the quoted draft was edited (text was added inside the quote)")
        else:
            line_index, position = where[end]
            line = marker_rest if line_index < 0 else lines[line_index]
            rest = " ".join(_tokens(line)[position:]) if position else ""
            start = line_index + 1 if position else max(line_index, 0)
            after = ([rest] if rest else []) + lines[start:]
    if after and any(line.strip() for line in after):
        after = _drop_mobile_signature(after)
        if after:
            why.append("text after the quoted draft (bottom-posting or an inline reply)")
    return _Region(why=why, after=after)


# --------------------------------------------------------------------------- extract

_SUBJECT_LINE = re.compile(r"^\s*subject\s*:\s*(.*?)\s*$", re.IGNORECASE)


def _find_marker(text: str) -> re.Match[str] | None:
    return _MARKER_RE.search(text)


def _extract(
    body: str, draft: DraftRef, owner_addresses: Sequence[str], owner_name: str
) -> Extraction:
    text = _clean(body)
    lines = text.split("\n")
    why: list[str] = []
    tokens = _Tokens(draft, owner_addresses, owner_name)
    after: list[str] = []
    match = _find_marker(text)
    if match is None:
        why.append(
            "no marker line found in the quoted draft (the client may have left the quote out)"
        )
        head = lines
    else:
        first = text.count("\n", 0, match.start())
        last = text.count("\n", 0, match.end())
        line_start = text.rfind("\n", 0, match.start()) + 1
        prefix = text[line_start : match.start()]
        quoted_style = ">" in prefix
        head = lines[:first]
        if not _DECORATION.match(prefix):
            why.append("there is text on the marker line")
            head = [*head, prefix.rstrip(" -\u2500\u2501\u2014\u2013")]
        elif (
            head
            and head[-1].strip()
            and _DECORATION.match(head[-1])
            and len(head[-1].strip(" >")) <= 8
        ):
            head = head[:-1]  # "───" wrapped onto its own line above the marker
        line_end = text.find("\n", match.end())
        rest_of_line = text[match.end() : line_end if line_end >= 0 else len(text)]
        region = _check_region(rest_of_line, lines[last + 1 :], quoted_style, draft)
        why.extend(region.why)
        after = region.after
    own = _drop_mobile_signature(_remove_quote_header(head, tokens, why))
    if after:
        own = [*own, ""] if own else own
        own = [*own, *after]
    own = [line if line == "-- " else line.rstrip() for line in _trim(own)]

    subject = ""
    if own:
        found = _SUBJECT_LINE.match(own[0])
        if found:
            subject = " ".join(found.group(1).split())
            own = _trim(own[1:])
            if not subject:
                why.append('the "Subject:" line is empty')
    own_text = "\n".join(own)
    if own_text:
        why.extend(leak_problems(own_text, draft, owner_addresses=owner_addresses))
    if subject:  # the subject goes to the customer too
        problems = leak_problems(subject, draft, owner_addresses=owner_addresses)
        why.extend(f"in the Subject line: {problem}" for problem in problems)
    why = list(dict.fromkeys(why))
    return Extraction(text=own_text, doubtful=bool(why), why=tuple(why), subject_override=subject)


def extract(
    body: str, draft: DraftRef, *, owner_addresses: Sequence[str], owner_name: str
) -> Extraction:
    """The owner's own words in ``body`` (from :func:`reply_text`), by mailbot's rules.

    See the module docstring. ``doubtful`` is True, with reasons in ``why``, when there
    is no marker, text after (or inside) the quoted draft, a changed quoted draft, an
    unrecognised quote header, or anything :func:`leak_problems` objects to. Never
    raises: an unexpected failure gives the whole body back, doubtful.
    """
    try:
        return _extract(body, draft, owner_addresses, owner_name)
    except Exception as exc:  # never silently wrong: give up loudly instead
        return Extraction(
            text=(body or "").strip(),
            doubtful=True,
            why=(f"the reply could not be read ({type(exc).__name__})",),
            subject_override="",
        )


# --------------------------------------------------------------------------- leak check

_RUN = 5  # words
_LINE = 20  # characters
_MAILBOT_ID_ANYWHERE = re.compile(
    re.escape(MAILBOT_ID_PREFIX) + r"[a-z][a-z0-9-]{0,30}\.[A-Za-z0-9_-]{8,}", re.IGNORECASE
)
_DISPLAY_NAME = re.compile(r"\bmailbot\s*\(", re.IGNORECASE)
_SPARKS = re.compile(f"[{SPARK_CHARS}]{{4,}}")


def _grams(words: Sequence[str], n: int) -> Iterator[tuple[str, ...]]:
    for i in range(len(words) - n + 1):
        yield tuple(words[i : i + n])


def _contains_run(words: Sequence[str], phrase: Sequence[str]) -> bool:
    return _find_run(list(words), list(phrase)) >= 0


def leak_problems(
    text: str,
    draft: DraftRef,
    *,
    owner_addresses: Sequence[str],
    mailbot_markers: Sequence[str] = (),
) -> list[str]:
    """Why ``text`` must not go to the customer as it is (DESIGN 3.4); ``[]`` when it may.

    Checked: no run of 5 or more words (case and punctuation ignored) and no line of
    20 or more characters shared with the draft's private context, except what the
    draft text itself also says (the owner edits the draft, and the draft was meant to
    be sent); no sparkline; no marker or instruction line (MARKER, PRIVATE_HEADING,
    the draft's and the confirmation request's instructions, ``mailbot_markers``); no
    token, canary or ``mailbot.`` message id; no leftover quote header (mailbot's
    display name, the draft email's subject, a line with an owner address ending
    in ":").
    """
    if not text.strip():
        return []
    problems: list[str] = []
    words = _words(text)
    squashed = _squash(text)
    draft_words = _words(draft.text)
    draft_squashed = _squash(draft.text)

    private = draft.private_context or ""
    if private.strip():
        allowed = set(_grams(draft_words, _RUN))
        secret = set(_grams(_words(private), _RUN)) - allowed
        for i, gram in enumerate(_grams(words, _RUN)):
            if gram in secret:
                end = i + _RUN
                while end < len(words) and tuple(words[end - _RUN + 1 : end + 1]) in secret:
                    end += 1
                problems.append(
                    f'it repeats "{" ".join(words[i:end])}" from the private part of the '
                    "draft (why this person, history)"
                )
                break
        private_squashed = _squash(private)
        for line in private.split("\n"):
            squashed_line = _squash(line)
            if (
                len(squashed_line) >= _LINE
                and squashed_line in squashed
                and squashed_line not in draft_squashed
            ):
                problems.append(f'it contains the private line "{line.strip()[:80]}"')
                break
        else:
            for own_line in text.split("\n"):
                own = _squash(own_line)
                if len(own) >= _LINE and own in private_squashed and own not in draft_squashed:
                    problems.append(f'it contains private text: "{own_line.strip()[:80]}"')
                    break
    if _SPARKS.search(text):
        problems.append("it contains a sparkline from the private part of the draft")

    for phrase in _instruction_phrases():
        if _contains_run(words, phrase) and not _contains_run(draft_words, phrase):
            problems.append(f'it contains mailbot\'s own words "{" ".join(phrase)}"')
            break
    for marker in mailbot_markers:
        if marker.strip() and (
            _squash(marker) in squashed
            or (len(_words(marker)) >= 3 and _contains_run(words, _words(marker)))
        ):
            problems.append(f'it contains mailbot\'s marker "{marker.strip()[:60]}"')
    folded = text.casefold()
    if draft.token and draft.token.casefold() in folded:
        problems.append("it contains the draft's secret token")
    if CANARY_PREFIX.casefold() in folded:
        problems.append("it contains the private part's canary line")
    if _MAILBOT_ID_ANYWHERE.search(text):
        problems.append("it contains a mailbot message id")
    if _DISPLAY_NAME.search(text):
        problems.append("it contains mailbot's sender name, probably from a quote header")
    subject = _squash(draft.subject)
    if len(subject) >= 10 and subject in squashed and subject not in draft_squashed:
        problems.append("it contains the draft email's subject, probably from a quote header")
    addresses = [a.strip().casefold() for a in owner_addresses if a.strip()]
    for line in text.split("\n"):
        low = line.casefold()
        if any(a in low for a in addresses) and (
            _ENDS_WITH_COLON.search(line) or any(f"<{a}>" in low for a in addresses)
        ):
            problems.append(f'it contains a line that looks like a quote header: "{line[:80]}"')
            break
    return problems


# --------------------------------------------------------------------------- commands

_SEND = frozenset(
    {"", "send", "send it", "yes", "y", "ok", "okay", "yes please", "ja", "oui", "sí", "si", "👍"}
)
_WORDS_TO_KIND: dict[str, CommandKind] = {
    "skip": CommandKind.SKIP,
    "skip it": CommandKind.SKIP,
    "überspringen": CommandKind.SKIP,
    "never": CommandKind.NEVER,
    "nie": CommandKind.NEVER,
    "niemals": CommandKind.NEVER,
    "jamais": CommandKind.NEVER,
    "nunca": CommandKind.NEVER,
    "not a customer": CommandKind.NOT_CUSTOMER,
    "not customer": CommandKind.NOT_CUSTOMER,
    "kein kunde": CommandKind.NOT_CUSTOMER,
    "keine kundin": CommandKind.NOT_CUSTOMER,
    "pas un client": CommandKind.NOT_CUSTOMER,
    "pas une cliente": CommandKind.NOT_CUSTOMER,
    "no es cliente": CommandKind.NOT_CUSTOMER,
    "done": CommandKind.DONE,
    "erledigt": CommandKind.DONE,
    "undo": CommandKind.UNDO,
    "rückgängig": CommandKind.UNDO,
    "annuler": CommandKind.UNDO,
    "send anyway": CommandKind.SEND_ANYWAY,
    "trotzdem senden": CommandKind.SEND_ANYWAY,
    "envoyer quand même": CommandKind.SEND_ANYWAY,
}
_COMMAND_FIRST_WORDS = frozenset(
    {"send", "yes", "y", "ok", "okay", "skip", "snooze", "never", "not", "done", "undo"}
)
_SNOOZE = re.compile(
    r"^snooze(?:\s+for)?(?:\s*(?P<n>\d{1,4}|a|an|one)?\s*"
    r"(?P<unit>d|days?|w|wks?|weeks?|m|mos?|months?|y|yrs?|years?)?)?$"
)
_UNIT_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}
_SNOOZE_DEFAULT = 14
_SNOOZE_MAX = 365
_EDGE_PUNCT = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e`.!?,;:\u2026\u3002\uff01\uff1f \t"
_THUMBS = re.compile("^\U0001f44d[\U0001f3fb-\U0001f3ff]?\ufe0f?$")


def _norm_command(line: str) -> str:
    line = _nfkc(line).casefold().strip().strip(_EDGE_PUNCT)
    line = " ".join(line.split())
    if _THUMBS.match(line):
        return "👍"
    return line


def _snooze(line: str) -> Command | None:
    match = _SNOOZE.match(line)
    if match is None:
        return None
    n, unit = match.group("n"), match.group("unit")
    if n is None and unit is None:
        return Command(CommandKind.SNOOZE, days=_SNOOZE_DEFAULT, note="snooze (2 weeks)")
    if unit is None:
        note = 'say how long: "snooze 10d", "snooze 2w", "snooze 3m"'
        return Command(CommandKind.UNKNOWN, text=line, note=note)
    count = 1 if n in (None, "a", "an", "one") else int(n or "1")
    days = min(count * _UNIT_DAYS[unit[0]], _SNOOZE_MAX)
    if days <= 0:
        return Command(CommandKind.UNKNOWN, text=line, note="a snooze must be at least a day")
    return Command(CommandKind.SNOOZE, days=days, note=f"snooze {days} days")


def _without_signature(lines: list[str]) -> list[str]:
    for index, line in enumerate(lines):
        if _SIGNATURE_DELIMITER.match(line):
            return _trim(lines[:index])
    return _drop_mobile_signature(lines)


def _single_command(line: str) -> Command | None:
    norm = _norm_command(line)
    if norm in _SEND:
        return Command(CommandKind.SEND_DRAFT, note=norm or "empty reply")
    if norm in _WORDS_TO_KIND:
        return Command(_WORDS_TO_KIND[norm], note=norm)
    return _snooze(norm)


def parse_command(text: str) -> Command:
    """What the owner's extracted text asks for (DESIGN 3.6).

    Empty, "send", "yes", "ok", "okay", "y", 👍 (and "ja", "oui", "sí") -> SEND_DRAFT
    (never YES, see the module docstring); "skip"; "snooze" (2 weeks), "snooze 10d",
    "snooze 2w", "snooze 3 months" (a month is 30 days, at most 365); "never";
    "not a customer"; "done"; "undo"; "send anyway" -- case-insensitive, surrounding
    punctuation and quotes ignored, a few German, French and Spanish words too. A
    "-- " signature after the command is ignored.

    Anything else that is short (three words or fewer), or that starts with a command
    word and is under nine words, or a command followed by more lines, is UNKNOWN:
    the owner is asked, nothing is sent. Longer text is SEND_TEXT, the owner's note.
    """
    try:
        raw = (text or "").replace("\r\n", "\n").strip()
        lines = _without_signature(_trim(raw.split("\n")))
        content = [line for line in lines if line.strip()]
        if not content:
            return Command(CommandKind.SEND_DRAFT, note="empty reply")
        if len(content) == 1:
            found = _single_command(content[0])
            if found is not None:
                return found
        elif _single_command(content[0]) is not None:
            return Command(CommandKind.UNKNOWN, text=raw, note="a command followed by more text")
        words = " ".join(content).split()
        first = _norm_command(words[0]) if words else ""
        if len(words) <= 3:
            note = "a short reply mailbot does not know"
            return Command(CommandKind.UNKNOWN, text=raw, note=note)
        if first in _COMMAND_FIRST_WORDS and len(words) < 9:
            return Command(
                CommandKind.UNKNOWN, text=raw, note="it starts like a command but is not one"
            )
        return Command(CommandKind.SEND_TEXT, text=raw)
    except Exception as exc:  # never raise; never send what could not be read
        return Command(CommandKind.UNKNOWN, text=str(text)[:200], note=type(exc).__name__)
