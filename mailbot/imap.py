"""imapclient adapter: connect, find folders, search, batched fetches, IDLE.

Everything imapclient-specific (bytes-keyed dicts, BodyData tuples, its
exceptions) stays in this module: callers get plain values and mailbot's own
errors. It is synchronous; the daemon owns one session in one thread.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from imapclient.imapclient import SocketTimeout

from .config import ImapSettings
from .errors import AuthError, ConfigError, MailbotError, MailServerError, TLSError

log = logging.getLogger(__name__)

# The usual names of the Sent folder, for servers without SPECIAL-USE (RFC 6154).
SENT_NAMES = (
    "Sent",
    "Sent Items",  # Outlook, Exchange
    "Sent Messages",  # iCloud
    "[Gmail]/Sent Mail",
    "[Google Mail]/Sent Mail",
    "INBOX.Sent",  # Courier-style namespaces, older Dovecot
    "INBOX/Sent",
    "Sent Mail",
    "Gesendet",
    "Gesendete Elemente",
    "Envoyés",
    "Elementos enviados",
)


@dataclass(frozen=True)
class TextPart:
    """Where the readable text of a message is, from its BODYSTRUCTURE."""

    section: str  # e.g. "1", "1.1", "2"
    subtype: str  # "plain" or "html"
    charset: str
    encoding: str  # Content-Transfer-Encoding, lower-case
    size: int


@dataclass(frozen=True)
class FetchedHeaders:
    uid: int
    header: bytes
    internaldate: datetime | None


@dataclass(frozen=True)
class FolderStatus:
    name: str
    uidvalidity: int
    uidnext: int
    exists: int


def make_tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying TLS context: the system's CAs plus the configured extra bundle."""
    ctx = ssl.create_default_context()
    if ca_file:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the CA bundle ca_file = {ca_file!r}: {exc}") from exc
    return ctx


def _s(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return "" if value is None else str(value)


def _params(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(raw, tuple | list):
        items = list(raw)
        for k, v in zip(items[::2], items[1::2], strict=False):
            out[_s(k).lower()] = _s(v)
    return out


def _is_attachment(part: Sequence[Any]) -> bool:
    # text/* single parts: type subtype params id desc enc size lines md5 disposition ...
    if len(part) > 9 and isinstance(part[9], tuple | list) and part[9]:
        return _s(part[9][0]).lower() == "attachment"
    return False


def text_part_of(bs: Any) -> TextPart | None:
    """The text/plain part (else text/html) to fetch for the snippet; never an attachment.

    Pure: takes imapclient's parsed BODYSTRUCTURE. Attached messages
    (message/rfc822) are not descended into.
    """
    found: dict[str, TextPart] = {}

    def walk(node: Any, section: str) -> None:
        if not isinstance(node, tuple | list) or not node:
            return
        if isinstance(node[0], list):  # multipart: ([parts], subtype, ...)
            for i, child in enumerate(node[0], start=1):
                walk(child, f"{section}.{i}" if section else str(i))
            return
        mtype, subtype = _s(node[0]).lower(), _s(node[1]).lower() if len(node) > 1 else ""
        if mtype != "text" or subtype not in ("plain", "html") or _is_attachment(node):
            return
        if subtype in found:
            return
        params = _params(node[2]) if len(node) > 2 else {}
        size = node[6] if len(node) > 6 and isinstance(node[6], int) else 0
        found[subtype] = TextPart(
            section=section or "1",
            subtype=subtype,
            charset=params.get("charset", "us-ascii"),
            encoding=_s(node[5]).lower() if len(node) > 5 else "7bit",
            size=size,
        )

    walk(bs, "")
    return found.get("plain") or found.get("html")


def _oauth2_login(client: IMAPClient, s: ImapSettings, where: str) -> None:
    """AUTHENTICATE XOAUTH2 with a fresh-enough access token; when the server refuses it
    (revoked early, clock skew), refresh once and try once more on the same connection."""
    from . import oauth

    source = oauth.token_source(s)
    for attempt in (1, 2):
        try:
            token = source.access_token(force=attempt == 2)
        except MailbotError:
            _safe_logout(client)
            raise
        try:
            client.oauth2_login(s.username, token)
            return
        except LoginError:
            source.forget_access_token()
            if attempt == 2:
                _safe_logout(client)
                raise AuthError(
                    f"the IMAP server {where} refused the OAuth2 token for {s.username!r} even "
                    "after a refresh: run `mailbot auth` to sign in again (as that account)"
                ) from None
            log.info("IMAP %s refused the OAuth2 token for %s; refreshing it", where, s.username)
        except (OSError, imaplib.IMAP4.error) as exc:
            _safe_logout(client)
            raise MailServerError(f"IMAP login at {where} failed: {exc}") from exc


class ImapSession:
    """One logged-in IMAP connection."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self.client: IMAPClient | None = None
        self._selected: str | None = None

    # -- connection

    def connect(self) -> None:
        s = self.settings
        where = f"{s.host}:{s.port}"
        ctx = make_tls_context(str(s.ca_file) if s.ca_file else None)
        timeout = SocketTimeout(connect=min(30.0, s.timeout_seconds), read=s.timeout_seconds)
        try:
            client = IMAPClient(
                s.host, port=s.port, ssl=s.security == "tls", ssl_context=ctx, timeout=timeout
            )
            if s.security == "starttls":
                client.starttls(ctx)
        except ssl.SSLCertVerificationError as exc:
            raise TLSError(
                f"the IMAP server {where} presented a certificate that is not trusted "
                f"({exc.verify_message}); set [imap] ca_file if it is self-signed"
            ) from exc
        except ssl.SSLError as exc:
            raise TLSError(f"TLS with the IMAP server {where} failed: {exc.reason}") from exc
        except socket.gaierror as exc:
            raise MailServerError(f"cannot resolve the IMAP host {s.host!r}: {exc}") from exc
        except ConnectionRefusedError as exc:
            raise MailServerError(
                f"the IMAP server {where} refused the connection (is the port right?)"
            ) from exc
        except TimeoutError as exc:
            raise MailServerError(f"the IMAP server {where} did not answer in time") from exc
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailServerError(f"cannot connect to the IMAP server {where}: {exc}") from exc
        client.normalise_times = False
        if s.auth == "oauth2":
            _oauth2_login(client, s, where)
            self.client = client
            self._selected = None
            log.info("connected to IMAP %s as %s (OAuth2)", where, s.username)
            return
        try:
            client.login(s.username, s.password.reveal())
        except LoginError as exc:
            _safe_logout(client)
            said = _server_text(exc)
            raise AuthError(
                f"the IMAP server {where} refused the login for {s.username!r}: "
                "wrong username or password (for Gmail and iCloud use an app password)"
                + (f"; the server said: {said}" if said else "")
            ) from exc
        except (OSError, imaplib.IMAP4.error) as exc:
            _safe_logout(client)
            raise MailServerError(f"IMAP login at {where} failed: {exc}") from exc
        self.client = client
        self._selected = None
        log.info("connected to IMAP %s as %s", where, s.username)

    def close(self) -> None:
        if self.client is not None:
            _safe_logout(self.client)
        self.client = None
        self._selected = None

    def _c(self) -> IMAPClient:
        if self.client is None:
            raise MailServerError("not connected to the IMAP server")
        return self.client

    # -- folders

    def folder_names(self) -> list[tuple[tuple[str, ...], str]]:
        with _server_errors("LIST"):
            return [
                (tuple(_s(f) for f in flags), name)
                for flags, _delim, name in self._c().list_folders()
            ]

    def find_sent(self, configured: str = "") -> str:
        """The Sent folder: the configured name, else SPECIAL-USE \\Sent, else a usual name."""
        folders = self.folder_names()
        names = [n for _f, n in folders]
        if configured:
            if configured not in names:
                raise ConfigError(
                    f"the IMAP folder [imap] sent = {configured!r} does not exist; "
                    f"folders are: {', '.join(sorted(names))}"
                )
            return configured
        for flags, name in folders:
            if "\\Sent" in flags:
                return name
        lower = {n.lower(): n for n in names}
        for candidate in SENT_NAMES:
            if candidate.lower() in lower:
                return lower[candidate.lower()]
        raise ConfigError(
            "cannot find the Sent folder (no \\Sent flag, no usual name); set [imap] sent "
            f"to one of: {', '.join(sorted(names))}"
        )

    def require_folder(self, name: str) -> None:
        names = [n for _f, n in self.folder_names()]
        if name not in names and name.upper() != "INBOX":
            raise ConfigError(
                f"the IMAP folder {name!r} does not exist; folders are: {', '.join(sorted(names))}"
            )

    def select(self, folder: str) -> FolderStatus:
        with _server_errors(f"SELECT {folder}"):
            info = self._c().select_folder(folder, readonly=True)
        self._selected = folder
        return FolderStatus(
            name=folder,
            uidvalidity=int(info.get(b"UIDVALIDITY", 0)),
            uidnext=int(info.get(b"UIDNEXT", 0)),
            exists=int(info.get(b"EXISTS", 0)),
        )

    # -- search and fetch

    def uids_since(self, day: date) -> list[int]:
        with _server_errors("SEARCH SINCE"):
            return sorted(int(u) for u in self._c().search(["SINCE", day]))

    def uids_above(self, uid: int) -> list[int]:
        with _server_errors("SEARCH UID"):
            found = self._c().search(["UID", f"{uid + 1}:*"])
        # "n:*" always matches the highest UID, even when it is below n
        return sorted(int(u) for u in found if int(u) > uid)

    def search_message_id(self, message_id: str) -> list[int]:
        with _server_errors("SEARCH HEADER"):
            return [int(u) for u in self._c().search(["HEADER", "Message-ID", f"<{message_id}>"])]

    def fetch_headers(self, uids: Sequence[int], fields: Iterable[str]) -> list[FetchedHeaders]:
        """Header fields and INTERNALDATE for ``uids`` in one FETCH (no body, no structure:
        most of a mailbox is decided from its headers; see :meth:`fetch_structure`)."""
        if not uids:
            return []
        spec = f"BODY.PEEK[HEADER.FIELDS ({' '.join(f.upper() for f in fields)})]"
        with _server_errors("FETCH headers"):
            resp = self._c().fetch(list(uids), [spec, "INTERNALDATE"])
        out = []
        for uid, data in resp.items():
            header = b""
            for key, value in data.items():
                if key.startswith(b"BODY[HEADER") and isinstance(value, bytes):
                    header = value
            idate = data.get(b"INTERNALDATE")
            if isinstance(idate, datetime) and idate.tzinfo is None:
                idate = idate.replace(tzinfo=UTC)
            out.append(FetchedHeaders(
                uid=int(uid), header=header,
                internaldate=idate if isinstance(idate, datetime) else None,
            ))
        out.sort(key=lambda f: f.uid)
        return out

    def fetch_structure(self, uids: Sequence[int]) -> dict[int, TextPart | None]:
        """Where each message's text is (from BODYSTRUCTURE), for the messages worth reading."""
        if not uids:
            return {}
        with _server_errors("FETCH BODYSTRUCTURE"):
            resp = self._c().fetch(list(uids), ["BODYSTRUCTURE"])
        out: dict[int, TextPart | None] = {}
        for uid, data in resp.items():
            try:
                out[int(uid)] = text_part_of(data.get(b"BODYSTRUCTURE"))
            except (IndexError, TypeError, ValueError):
                out[int(uid)] = None
        return out

    def fetch_text(self, wanted: dict[int, TextPart], limit: int) -> dict[int, bytes]:
        """The first ``limit`` bytes of each message's text part: one FETCH per distinct section."""
        by_section: dict[str, list[int]] = {}
        for uid, part in wanted.items():
            by_section.setdefault(part.section, []).append(uid)
        out: dict[int, bytes] = {}
        for section, uids in by_section.items():
            spec = f"BODY.PEEK[{section}]<0.{limit}>"
            with _server_errors("FETCH text"):
                resp = self._c().fetch(uids, [spec])
            for uid, data in resp.items():
                for key, value in data.items():
                    if key.startswith(b"BODY[") and isinstance(value, bytes):
                        out[int(uid)] = value
        return out

    def fetch_sizes(self, uids: Sequence[int]) -> dict[int, int]:
        with _server_errors("FETCH size"):
            resp = self._c().fetch(list(uids), ["RFC822.SIZE"])
        return {int(u): int(d.get(b"RFC822.SIZE", 0)) for u, d in resp.items()}

    def append(self, folder: str, raw: bytes, *, flags: Sequence[str] = (),
               when: datetime | None = None) -> None:
        with _server_errors(f"APPEND {folder}"):
            self._c().append(folder, raw, flags=tuple(flags), msg_time=when)
        self._selected = None

    def fetch_full(self, uids: Sequence[int]) -> dict[int, bytes]:
        with _server_errors("FETCH"):
            resp = self._c().fetch(list(uids), ["BODY.PEEK[]"])
        return {int(u): d.get(b"BODY[]", b"") for u, d in resp.items()}

    # -- IDLE

    def has_idle(self) -> bool:
        with _server_errors("CAPABILITY"):
            return b"IDLE" in self._c().capabilities()

    def idle_start(self) -> None:
        with _server_errors("IDLE"):
            self._c().idle()

    def idle_wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds in IDLE; True when the server reported something.

        imapclient's ``idle_check`` swallows an EOF and returns an empty list at once,
        so an early empty return means the server went away: raise, and reconnect.
        """
        started = time.monotonic()
        with _server_errors("IDLE wait"):
            responses = self._c().idle_check(timeout=timeout)
        if not responses and time.monotonic() - started < timeout * 0.5:
            raise MailServerError("the IMAP server closed the connection during IDLE")
        for r in responses:
            if isinstance(r, tuple) and r and r[0] == b"BYE":
                raise MailServerError("the IMAP server said BYE during IDLE")
        return any(isinstance(r, tuple) and len(r) > 1 and r[1] in (b"EXISTS", b"RECENT")
                   for r in responses)

    def idle_stop(self) -> None:
        with _server_errors("DONE"):
            self._c().idle_done()

    def noop(self) -> None:
        with _server_errors("NOOP"):
            self._c().noop()


@contextlib.contextmanager
def _server_errors(what: str) -> Iterator[None]:
    """Turn imapclient/socket failures during ``what`` into :class:`MailServerError`."""
    try:
        yield
    except (MailServerError, ConfigError):
        raise
    except (OSError, imaplib.IMAP4.error, EOFError, ssl.SSLError) as exc:
        raise MailServerError(f"IMAP {what} failed: {exc or type(exc).__name__}") from exc


def _server_text(exc: BaseException) -> str:
    """The server's own words from a refused command (e.g. Gmail's "[ALERT] Application-
    specific password required"), one line, bounded; never the password (not echoed)."""
    text = str(exc).strip()
    for prefix in ("b'", 'b"'):
        if text.startswith(prefix) and text.endswith(text[1]):
            text = text[2:-1]
    text = " ".join(text.split())
    return text[:200]


def _safe_logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            log.debug("IMAP shutdown after a failed logout also failed", exc_info=True)
