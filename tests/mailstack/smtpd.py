#!/usr/bin/env python3
"""SMTP front end of mailbot's test mail stack: aiosmtpd delivering into Dovecot via LMTP.

Started by ``mailstack.sh start DIR`` (never by hand in tests).  It listens on 127.0.0.1:

* ``--port``: plaintext with STARTTLS; AUTH PLAIN/LOGIN/XOAUTH2 offered once TLS is up;
* ``--tls-port``: implicit TLS, AUTH PLAIN/LOGIN/XOAUTH2 offered.

AUTH XOAUTH2 tokens are checked by RFC 7662 introspection at ``--oauth-url`` (the stack's
oauthd.py): the token must be active and its ``username`` must be the ``user=`` given.  A
refused token gets the provider-style error challenge (``334`` + base64 JSON), then ``535``.

Both use DIR/ssl/{cert,key}.pem.  AUTH is optional (a test may play a stranger sending
to the owner), but credentials that are given are checked against DIR/users.d/.

Recipients must be users in DIR/users.d/ (Dovecot's passwd-files, one per user, read at
each lookup, so users added during a run are known at once); ``local+tag@`` counts as
``local@``.
Others get ``550 5.1.1``.  DATA is answered 250 only after Dovecot's LMTP stored the
message for every recipient, so whoever gets the 250 can find the message over IMAP at once;
if Dovecot is down the answer is ``451``.  A reply starting with 421 also closes the
connection, as RFC 5321 says it should.

Fault injection, read on every DATA command: DIR/faults.json holds
``{"data": [ACTION, ...]}``; each DATA command (once the final dot is in) takes the first
ACTION off the list, and a missing file or empty list means normal service:

* ``{"action": "reply", "code": 421, "text": "4.3.0 try later"}``: answer with that code
  and text and deliver nothing;
* ``{"action": "drop", "stall": 0.0}``: deliver and log the message, wait ``stall``
  seconds (at most 60), then close the connection without answering: the client cannot
  know whether the message went (the ambiguous outcome).

Every delivered message is logged as one JSON object per line in DIR/log/smtp.jsonl:
``time, port, tls, auth, mail_from, rcpts, message_id, subject, size, fault``.  ``rcpts``
holds only the recipients that were really delivered to.

The process writes its PID to ``--pidfile`` once both ports listen, and exits cleanly on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import smtplib
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request
from base64 import b64decode
from email.parser import BytesHeaderParser
from email.utils import formatdate
from pathlib import Path
from typing import Any, AnyStr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

log = logging.getLogger("mailstack.smtpd")

MAX_STALL_S = 60.0  # bound for the "drop" fault's stall
LMTP_TIMEOUT_S = 30.0


class Users:
    """The stack's users: one passwd-file line per user in DIR/users.d/ADDRESS.

    Read at every lookup (a file per user is cheap to read), so users added while the
    server runs are known at once.
    """

    _ADDRESS = re.compile(r"[a-z0-9][a-z0-9._-]*@[a-z0-9.-]+")

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def password(self, address: str) -> str | None:
        """ADDRESS's plain password, or None if there is no such user."""
        address = address.strip().lower()
        if not self._ADDRESS.fullmatch(address):
            return None
        try:
            line = (self._directory / address).read_text().split("\n", 1)[0]
        except FileNotFoundError:
            return None
        fields = line.split(":")
        return fields[1].removeprefix("{PLAIN}") if len(fields) >= 2 else None

    def knows(self, address: str) -> bool:
        """Whether ADDRESS (any case, ``local+tag@`` allowed) is a mailbox here."""
        local, _, domain = address.strip().partition("@")
        return self.password(f"{local.split('+', 1)[0]}@{domain}") is not None


class Faults:
    """The fault queue in DIR/faults.json, consumed one action per DATA command."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def take(self) -> dict[str, Any] | None:
        """Pop and return the next action, or None for normal service."""
        with self._lock:
            try:
                spec = json.loads(self._path.read_text())
            except FileNotFoundError:
                return None
            queue = spec.get("data") or []
            if not queue:
                return None
            action: dict[str, Any] = queue.pop(0)
            spec["data"] = queue
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(spec))
            tmp.replace(self._path)
            log.info("fault taken: %s (%d left)", action, len(queue))
            return action


class DeliveryLog:
    """Append-only JSON-lines log of delivered messages."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock, self._path.open("a", encoding="utf-8") as fh:
            fh.write(line)


class MailstackSMTP(SMTP):
    """aiosmtpd's SMTP session with two twists: 421 closes, and a reply can be dropped."""

    drop_next_reply = False

    async def push(self, status: AnyStr) -> None:
        if self.drop_next_reply:
            self.drop_next_reply = False
            peer = self.session.peer if self.session else None
            log.info("%r dropping the connection instead of answering", peer)
            if self.transport is not None:
                self.transport.close()
            return
        await super().push(status)
        code = status[:3] if isinstance(status, bytes) else status[:3].encode()
        if code == b"421" and self.transport is not None:
            self.transport.close()


class MailstackController(Controller):
    """Controller that builds MailstackSMTP sessions."""

    def factory(self) -> SMTP:
        return MailstackSMTP(self.handler, **self.SMTP_kwargs)


class LMTPDelivery:
    """aiosmtpd handler: check recipients, apply faults, deliver through Dovecot's LMTP."""

    def __init__(
        self, directory: Path, users: Users, hostname: str, oauth_url: str = ""
    ) -> None:
        self.oauth_url = oauth_url
        self.lmtp_socket = str(directory / "run" / "lmtp")
        self.users = users
        self.hostname = hostname
        self.faults = Faults(directory / "faults.json")
        self.delivery_log = DeliveryLog(directory / "log" / "smtp.jsonl")

    def _introspect(self, token: str) -> dict[str, Any]:
        body = urllib.parse.urlencode({"token": token}).encode()
        with urllib.request.urlopen(self.oauth_url, body, timeout=5) as resp:
            result: dict[str, Any] = json.loads(resp.read())
        return result

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """AUTH XOAUTH2 (Google's and Microsoft's SASL mechanism), checked by introspection."""
        if len(args) < 2:
            blob = await server.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = b64decode(args[1], validate=True)
            except ValueError:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        fields = dict(
            part.split("=", 1) for part in blob.decode("utf-8", "replace").split("\x01")
            if "=" in part
        )
        user = fields.get("user", "").lower()
        token = fields.get("auth", "").removeprefix("Bearer ").strip()
        info: dict[str, Any] = {}
        if self.oauth_url and user and token:
            loop = asyncio.get_running_loop()
            try:
                info = await loop.run_in_executor(None, self._introspect, token)
            except (OSError, ValueError) as exc:
                log.error("introspection failed: %r", exc)
                await server.push("454 4.7.0 Temporary authentication failure")
                return AuthResult(success=False, handled=True)
        if info.get("active") is True and str(info.get("username", "")).lower() == user:
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        log.info("XOAUTH2 refused for %s", user or "?")
        error = json.dumps({"status": "401", "schemes": "bearer", "scope": "mail"})
        answer = await server.challenge_auth(error)  # the client answers with an empty line
        # challenge_auth answered a bad reply ("*", not base64) itself
        return AuthResult(success=False, handled=not isinstance(answer, bytes))

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not self.users.knows(address):
            return f"550 5.1.1 <{address}>: Recipient address rejected: no such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    def _lmtp_deliver(self, mail_from: str, rcpt: str, data: bytes, utf8: bool) -> None:
        with smtplib.LMTP(self.lmtp_socket, timeout=LMTP_TIMEOUT_S) as lmtp:
            lmtp.sendmail(mail_from or "<>", [rcpt], data, ["SMTPUTF8"] if utf8 else [])

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        action = self.faults.take()
        if action is not None and action.get("action") == "reply":
            return f"{int(action['code'])} {action.get('text') or 'injected fault'}"

        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        login = getattr(session.auth_data, "login", None)
        auth = login.decode("utf-8", "replace") if isinstance(login, bytes) else None
        peer = session.peer[0] if session.peer else "unknown"
        received = (
            f"Received: from {session.host_name or 'unknown'} ([{peer}])\r\n"
            f"\tby {self.hostname} (mailstack-smtpd) with "
            f"{'ESMTP' if session.extended_smtp else 'SMTP'}{'S' if tls else ''}"
            f"{'A' if auth else ''};\r\n\t{formatdate()}\r\n"
        ).encode("ascii")
        content = envelope.original_content or b""
        data = received + content
        mail_from = envelope.mail_from or ""
        loop = asyncio.get_running_loop()
        delivered: list[str] = []
        failed: list[str] = []
        t0 = time.perf_counter()
        for rcpt in envelope.rcpt_tos:
            try:
                await loop.run_in_executor(
                    None, self._lmtp_deliver, mail_from, rcpt, data, envelope.smtp_utf8
                )
                delivered.append(rcpt)
            except (OSError, smtplib.SMTPException) as exc:
                log.error("LMTP delivery to %s failed: %r", rcpt, exc)
                failed.append(rcpt)
        drop = action is not None and action.get("action") == "drop"
        headers = BytesHeaderParser().parsebytes(content)
        if delivered:
            self.delivery_log.append(
                {
                    "time": time.time(),
                    "port": transport.get_extra_info("sockname")[1] if transport else None,
                    "tls": tls,
                    "auth": auth,
                    "mail_from": mail_from,
                    "rcpts": delivered,
                    "message_id": _header(headers.get("Message-ID")),
                    "subject": _header(headers.get("Subject")),
                    "size": len(content),
                    "fault": "drop" if drop else None,
                }
            )
        log.info(
            "from=<%s> to=%s size=%d auth=%s tls=%s lmtp=%.1fms failed=%s%s",
            mail_from,
            delivered,
            len(content),
            auth,
            tls,
            (time.perf_counter() - t0) * 1000,
            failed,
            " DROP" if drop else "",
        )
        if failed:
            return f"451 4.3.0 local delivery failed for {', '.join(failed)}"
        if drop:
            assert action is not None
            stall = min(max(float(action.get("stall") or 0.0), 0.0), MAX_STALL_S)
            if stall:
                await asyncio.sleep(stall)  # the client sees no answer: a timeout
            assert isinstance(server, MailstackSMTP)
            server.drop_next_reply = True
        return "250 2.0.0 Ok: delivered"


def _header(value: object) -> str | None:
    return None if value is None else str(value).strip()


def make_authenticator(users: Users) -> Any:
    """AUTH PLAIN/LOGIN checker against the passwd-file."""

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace").lower()
            password = auth_data.password.decode("utf-8", "replace")
            if users.password(login) == password:
                return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    return authenticator


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--dir", required=True, type=Path)
    ap.add_argument("--domain", default="example.test")
    ap.add_argument("--port", type=int, required=True, help="STARTTLS port")
    ap.add_argument("--tls-port", type=int, required=True, help="implicit TLS port")
    ap.add_argument("--pidfile", required=True, type=Path)
    ap.add_argument("--oauth-url", default="", help="RFC 7662 introspection endpoint")
    args = ap.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter

    directory = args.dir.resolve()
    users = Users(directory / "users.d")
    fqdn = f"mailstack.{args.domain}"
    tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_context.load_cert_chain(directory / "ssl" / "cert.pem", directory / "ssl" / "key.pem")
    handler = LMTPDelivery(directory, users, fqdn, args.oauth_url)
    common: dict[str, Any] = {
        "hostname": "127.0.0.1",
        "server_hostname": fqdn,
        "authenticator": make_authenticator(users),
        "auth_required": False,
        "data_size_limit": 64 * 1024 * 1024,
        "decode_data": False,
    }
    controllers = [
        # STARTTLS port: AUTH only once TLS is up, like a real submission server
        MailstackController(
            handler, port=args.port, tls_context=tls_context, auth_require_tls=True, **common
        ),
        # implicit TLS: aiosmtpd cannot tell it is TLS, so do not make AUTH wait for STARTTLS
        MailstackController(
            handler, port=args.tls_port, ssl_context=tls_context, auth_require_tls=False, **common
        ),
    ]

    # Block the stop signals before the server threads start (they inherit the mask), then
    # wait for one in the main thread.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    started: list[MailstackController] = []
    try:
        for controller in controllers:
            controller.start()
            started.append(controller)
        tmp = args.pidfile.with_suffix(".tmp")
        tmp.write_text(f"{os.getpid()}\n")
        tmp.replace(args.pidfile)
        log.info("listening on 127.0.0.1:%d (STARTTLS) and :%d (TLS)", args.port, args.tls_port)
        sig = signal.sigwait(stop_signals)
        log.info("signal %d: stopping", sig)
    finally:
        for controller in started:
            controller.stop()
        args.pidfile.unlink(missing_ok=True)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
