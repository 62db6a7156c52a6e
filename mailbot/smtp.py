"""aiosmtplib adapter: log in, send one message, say exactly how it went.

TLS is always explicit: ``tls`` is implicit TLS, ``starttls`` requires the
upgrade (never the library's "upgrade if offered" default), ``none`` is for
loopback test servers only (config validation enforces that).

The outcome of a send is one of :class:`Outcome`. ``UNKNOWN`` is the dangerous
one: the connection failed while the message body was in flight or just after
the final dot, so the server may have accepted it. The outbox never resends an
``UNKNOWN`` blindly.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import aiosmtplib

from .config import ServerSettings
from .errors import AuthError, MailbotError, MailServerError, TLSError
from .imap import make_tls_context

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    SENT = "sent"
    TEMPORARY = "temporary"  # 4xx or a failure before DATA: safe to retry later
    PERMANENT = "permanent"  # 5xx: tell the owner, do not retry
    UNKNOWN = "unknown"  # failed during or after DATA: maybe delivered


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    detail: str
    code: int = 0


def _client(settings: ServerSettings) -> aiosmtplib.SMTP:
    ctx = make_tls_context(str(settings.ca_file) if settings.ca_file else None)
    return aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        use_tls=settings.security == "tls",
        start_tls=settings.security == "starttls",
        tls_context=ctx,
        timeout=settings.timeout_seconds,
    )


async def _connect_login(settings: ServerSettings) -> aiosmtplib.SMTP:
    where = f"{settings.host}:{settings.port}"
    client = _client(settings)
    try:
        await client.connect()
    except aiosmtplib.SMTPConnectError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ssl.SSLCertVerificationError):
            raise TLSError(
                f"the SMTP server {where} presented a certificate that is not trusted "
                f"({cause.verify_message}); set [smtp] ca_file if it is self-signed"
            ) from exc
        if isinstance(cause, ConnectionRefusedError):
            raise MailServerError(
                f"the SMTP server {where} refused the connection (is the port right?)"
            ) from exc
        if isinstance(cause, socket.gaierror):
            raise MailServerError(f"cannot resolve the SMTP host {settings.host!r}") from exc
        raise MailServerError(f"cannot connect to the SMTP server {where}: {exc}") from exc
    except ssl.SSLCertVerificationError as exc:
        raise TLSError(
            f"the SMTP server {where} presented a certificate that is not trusted "
            f"({exc.verify_message}); set [smtp] ca_file if it is self-signed"
        ) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise MailServerError(f"cannot connect to the SMTP server {where}: {exc}") from exc
    try:
        if settings.auth == "oauth2":
            await _xoauth2_login(client, settings, where)
        elif settings.username and settings.password.is_set:
            try:
                await client.login(settings.username, settings.password.reveal())
            except aiosmtplib.SMTPAuthenticationError as exc:
                await _quit(client)
                raise AuthError(
                    f"the SMTP server {where} refused the login for {settings.username!r}: "
                    "wrong username or password"
                ) from exc
            except aiosmtplib.SMTPException as exc:
                await _quit(client)
                raise MailServerError(f"SMTP login at {where} failed: {exc}") from exc
    except BaseException:
        # whatever went wrong (a password_command that failed, a cancelled task), the
        # connection must not outlive this call: an unclosed transport is a leak
        client.close()
        raise
    return client


async def _xoauth2_login(client: aiosmtplib.SMTP, settings: ServerSettings, where: str) -> None:
    """AUTH XOAUTH2 with a fresh-enough access token; when refused, refresh once and retry."""
    from . import oauth

    source = oauth.token_source(settings)
    for attempt in (1, 2):
        try:  # the token endpoint is blocking HTTP: keep it off the event loop
            token = await asyncio.to_thread(source.access_token, force=attempt == 2)
        except MailbotError:
            await _quit(client)
            raise
        try:
            await client.auth_xoauth2(settings.username, token)
            return
        except aiosmtplib.SMTPAuthenticationError as exc:
            source.forget_access_token()
            if attempt == 2:
                await _quit(client)
                raise AuthError(
                    f"the SMTP server {where} refused the OAuth2 token for "
                    f"{settings.username!r} even after a refresh ({exc.code}): run "
                    "`mailbot auth` to sign in again (as that account)"
                ) from None
            log.info("SMTP %s refused the OAuth2 token for %s; refreshing it", where,
                     settings.username)
        except aiosmtplib.SMTPException as exc:
            await _quit(client)
            raise MailServerError(f"SMTP login at {where} failed: {exc}") from exc


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


async def check_login(settings: ServerSettings) -> str:
    """Connect, upgrade TLS as configured, log in, quit. Returns a line for ``mailbot check``."""
    client = await _connect_login(settings)
    tls = "TLS" if settings.security != "none" else "no TLS"
    await _quit(client)
    if settings.auth != "oauth2" and not (settings.username and settings.password.is_set):
        # nothing was tried: say so rather than claim a login (a relay on localhost
        # may accept mail without one; a provider will refuse it at the first send)
        return (f"connected to {settings.host}:{settings.port} ({tls}); no login "
                "(no [smtp] username/password configured)")
    return f"logged in to {settings.host}:{settings.port} ({tls}) as {settings.username}"


async def send_raw(
    settings: ServerSettings, raw: bytes, mail_from: str, rcpts: Sequence[str],
    before_data: Callable[[], None] = lambda: None,
) -> SendResult:
    """Send one message. Never raises for a server answer: the outcome says what happened.

    ``before_data`` runs just before the DATA command: the outbox records "sending"
    there, so a crash while connecting or logging in leaves the item queued (nothing
    can have been delivered yet) and only a crash from DATA on leaves it unknown.
    """
    try:
        client = await _connect_login(settings)
    except AuthError as exc:
        return SendResult(Outcome.TEMPORARY, str(exc))
    except MailServerError as exc:
        return SendResult(Outcome.TEMPORARY, str(exc))
    try:
        try:
            await client.mail(mail_from)
            for r in rcpts:
                await client.rcpt(r)
        except aiosmtplib.SMTPResponseException as exc:
            return _by_code(exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return SendResult(Outcome.TEMPORARY, f"before DATA: {exc}")
        before_data()
        try:
            resp = await client.data(raw)
        except aiosmtplib.SMTPResponseException as exc:
            # a clear answer to DATA: the server said no
            return _by_code(exc.code, exc.message)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            return SendResult(Outcome.UNKNOWN, f"connection failed during DATA: {exc}")
        return SendResult(Outcome.SENT, resp.message, resp.code)
    finally:
        await _quit(client)


def _by_code(code: int, message: str) -> SendResult:
    if 400 <= code < 500:
        return SendResult(Outcome.TEMPORARY, f"{code} {message}", code)
    return SendResult(Outcome.PERMANENT, f"{code} {message}", code)


def send_raw_sync(
    settings: ServerSettings, raw: bytes, mail_from: str, rcpts: Sequence[str],
    before_data: Callable[[], None] = lambda: None,
) -> SendResult:
    return asyncio.run(send_raw(settings, raw, mail_from, rcpts, before_data))
