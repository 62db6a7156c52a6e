"""``mailbot check``: try each step of the setup and say, in one line each, how it went."""

from __future__ import annotations

import asyncio
import functools
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


def _oauth2_token(server: ServerSettings) -> str:
    """Refresh the account's access token now (the step "OAuth2 token")."""
    from . import oauth

    source = oauth.token_source(server)
    source.access_token(force=True)
    assert server.oauth2 is not None
    return (
        f"new access token for {server.username} from {server.oauth2.provider} "
        f"(valid {source.seconds_left / 60:.0f} min); refresh token in {source.store.name}"
    )


class _Steps:
    def __init__(self, emit: Callable[[Step], None]) -> None:
        self.emit = emit
        self.all_ok = True

    def __call__(self, name: str, fn: Callable[[], str]) -> bool:
        try:
            detail = fn()
        except MailbotError as exc:
            self.emit(Step(name, False, str(exc)))
            self.all_ok = False
            return False
        self.emit(Step(name, True, detail))
        return True


def _oauth2_steps(settings: Settings, step: _Steps) -> None:
    seen: set[str] = set()
    for server in (settings.imap, settings.smtp):
        if server.auth == "oauth2" and server.username.lower() not in seen:
            seen.add(server.username.lower())
            step("OAuth2 token", functools.partial(_oauth2_token, server))


def run_logins(settings: Settings, emit: Callable[[Step], None]) -> bool:
    """Just the IMAP and SMTP logins (``mailbot auth`` tests them after signing in)."""
    step = _Steps(emit)
    imap = settings.imap
    session = ImapSession(imap)

    def login() -> str:
        session.connect()
        return f"logged in to {imap.host}:{imap.port} as {imap.username}"

    step("IMAP login", login)
    session.close()
    step("SMTP login", lambda: asyncio.run(check_login(settings.smtp)))
    return step.all_ok


def run_checks(settings: Settings, emit: Callable[[Step], None]) -> bool:
    """Run every step, reporting each through ``emit``; True when all passed."""
    step = _Steps(emit)
    _oauth2_steps(settings, step)
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
    return step.all_ok
