"""``mailbot check``: try each step of the setup and say, in one line each, how it went."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from .config import ServerSettings, Settings
from .errors import MailbotError
from .imap import ImapSession, make_tls_context
from .smtp import check_login


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


def _dns(host: str) -> str:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise MailbotError(
            f"cannot resolve {host!r} ({exc.strerror}); check the host name"
        ) from None
    return ", ".join(sorted({str(i[4][0]) for i in infos}))


def _tcp(host: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 15.0)):
            return f"port {port} is open"
    except ConnectionRefusedError:
        raise MailbotError(
            f"nothing accepts connections on {host}:{port}; check the port and security mode"
        ) from None
    except TimeoutError:
        raise MailbotError(f"{host}:{port} did not answer within 15 s (firewall?)") from None
    except OSError as exc:
        raise MailbotError(f"cannot reach {host}:{port}: {exc.strerror}") from None


def _tls(server: ServerSettings) -> str:
    ctx = make_tls_context(str(server.ca_file) if server.ca_file else None)
    try:
        with socket.create_connection((server.host, server.port), timeout=15.0) as raw, \
                ctx.wrap_socket(raw, server_hostname=server.host) as tls:
            return f"certificate trusted, {tls.version()}"
    except ssl.SSLCertVerificationError as exc:
        raise MailbotError(
            f"the certificate of {server.host}:{server.port} is not trusted "
            f"({exc.verify_message}); if the server is self-signed, set ca_file"
        ) from None
    except ssl.SSLError as exc:
        raise MailbotError(
            f"TLS with {server.host}:{server.port} failed ({exc.reason}); "
            "is this port plain text or STARTTLS? check 'security'"
        ) from None
    except OSError as exc:
        raise MailbotError(f"TLS with {server.host}:{server.port} failed: {exc}") from None


def run_checks(settings: Settings, emit: Callable[[Step], None]) -> bool:
    """Run every step, reporting each through ``emit``; True when all passed."""
    all_ok = True

    def step(name: str, fn: Callable[[], str]) -> bool:
        nonlocal all_ok
        try:
            detail = fn()
        except MailbotError as exc:
            emit(Step(name, False, str(exc)))
            all_ok = False
            return False
        emit(Step(name, True, detail))
        return True

    imap = settings.imap
    session = ImapSession(imap)
    ok = step("IMAP DNS", lambda: f"{imap.host} -> {_dns(imap.host)}")
    ok = ok and step("IMAP TCP", lambda: _tcp(imap.host, imap.port, imap.timeout_seconds))
    if ok and imap.security == "tls":
        ok = step("IMAP TLS", lambda: _tls(imap))

    def login() -> str:
        session.connect()
        return f"logged in as {imap.username}"

    ok = ok and step("IMAP login", login)

    def folders() -> str:
        session.require_folder(imap.inbox)
        sent = session.find_sent(imap.sent)
        for name in imap.extra_folders:
            session.require_folder(name)
        inbox = session.select(imap.inbox)
        return f"{imap.inbox} ({inbox.exists} messages), Sent is {sent!r}"

    if ok:
        step("IMAP folders", folders)
    session.close()

    smtp = settings.smtp
    ok = step("SMTP DNS", lambda: f"{smtp.host} -> {_dns(smtp.host)}")
    ok = ok and step("SMTP TCP", lambda: _tcp(smtp.host, smtp.port, smtp.timeout_seconds))
    if ok and smtp.security == "tls":
        ok = step("SMTP TLS", lambda: _tls(smtp))
    if ok:
        step("SMTP login", lambda: asyncio.run(check_login(smtp)))
    return all_ok
