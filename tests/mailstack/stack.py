"""Python API around ``mailstack.sh``: mailbot's private Dovecot + SMTP stack for tests.

One ``MailStack`` is one running stack in its own directory under /tmp, on free ports of
127.0.0.1.  The shell script owns the processes and files; this class starts and stops it,
and gives tests short, blocking helpers: add a mailbox, deliver over SMTP, APPEND over
IMAP, read a folder back, and break things on purpose (UIDVALIDITY change, kick, Dovecot
restart or crash, SMTP faults).

    stack = MailStack.start()
    try:
        owner = stack.add_user(f"owner-{secrets.token_hex(4)}")
        stack.deliver(raw, "customer@example.org", [owner])
        assert stack.message_count(owner, "INBOX") == 1
    finally:
        stack.stop()

Every helper opens its own short connection, so none of them disturbs a connection that
the code under test holds.  A user is given as a full address or as a local part of
``stack.domain``.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shlex
import shutil
import smtplib
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from imapclient import IMAPClient

SCRIPT = Path(__file__).with_name("mailstack.sh")
DEFAULT_USERS = ("owner", "alice", "bob", "carol")
EX_PORT_TAKEN = 75  # mailstack.sh's exit status when a port was grabbed meanwhile
SCRIPT_TIMEOUT_S = 60.0  # bound for any one mailstack.sh call (stop alone can take 10 s+)
DOVEADM_TIMEOUT_S = 30.0
# Debian puts dovecot in /usr/sbin, which a normal user's PATH often lacks
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


class MailStackError(RuntimeError):
    """The mail stack could not do what was asked (message says what and why)."""


class MailStack:
    """A running private mail stack, described by DIR/stack.env (see mailstack.sh)."""

    host = "127.0.0.1"

    def __init__(self, directory: Path | str) -> None:
        """Attach to the stack that ``mailstack.sh start DIRECTORY`` started."""
        self.directory = Path(directory).resolve()
        env = _read_env(self.directory / "stack.env")
        try:
            self.imap_port = int(env["MAILSTACK_IMAP_PORT"])
            self.imaps_port = int(env["MAILSTACK_IMAPS_PORT"])
            self.smtp_port = int(env["MAILSTACK_SMTP_PORT"])
            self.smtps_port = int(env["MAILSTACK_SMTPS_PORT"])
            self.cafile = env["MAILSTACK_CAFILE"]
            self.domain = env["MAILSTACK_DOMAIN"]
            self.password = env["MAILSTACK_PASSWORD"]
            self.oauth_url = env["MAILSTACK_OAUTH_URL"]
        except (KeyError, ValueError) as exc:
            raise MailStackError(f"{self.directory}/stack.env is incomplete: {exc!r}") from exc
        self.environ: dict[str, str] = env
        """The stack's description as environment variables (MAILSTACK_*)."""
        self._ssl_context: ssl.SSLContext | None = None
        self._owns_directory = False

    # ------------------------------------------------------------------ life cycle

    @classmethod
    def start(
        cls,
        directory: Path | str | None = None,
        *,
        users: Sequence[str] = DEFAULT_USERS,
        attempts: int = 3,
    ) -> MailStack:
        """Start a stack on free ports and return it.

        DIRECTORY defaults to a new directory under $MAILSTACK_ROOT (default /tmp), which
        is then removed again by ``stop()``.  Dovecot's unprivileged processes must be
        able to reach it, so every parent directory needs o+x.  USERS (local parts) get
        mailboxes at once.  Free ports are picked by the script at start; in the rare
        case that another process takes one before Dovecot or the SMTP server binds it,
        the start is retried with new ports, ATTEMPTS times in all.
        """
        _check_installed()
        owns = directory is None
        if directory is None:
            root = Path(os.environ.get("MAILSTACK_ROOT", "/tmp"))
            directory = tempfile.mkdtemp(prefix="mailbot-stack-", dir=root)
            os.chmod(directory, 0o755)  # mkdtemp makes it 0700; Dovecot's users must get in
        path = Path(directory).resolve()
        try:
            _check_traversable(path)
        except MailStackError:
            if owns:
                path.rmdir()
            raise
        # MAILSTACK_* of the caller's shell (say, an eval'd `mailstack.sh env` of another
        # stack) must not leak in: this stack picks its own ports.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTACK_")}
        env["MAILSTACK_PYTHON"] = sys.executable
        env["MAILSTACK_USERS"] = " ".join(users)
        for attempt in range(1, attempts + 1):
            proc = _run_script("start", str(path), env=env)
            if proc.returncode == 0:
                break
            if proc.returncode != EX_PORT_TAKEN or attempt == attempts:
                if owns:
                    shutil.rmtree(path, ignore_errors=True)
                raise MailStackError(
                    f"mailstack.sh start {path} failed (exit {proc.returncode}):\n"
                    f"{proc.stderr.strip()}"
                )
        stack = cls(path)
        stack._owns_directory = owns
        atexit.register(stack._stop_at_exit)
        return stack

    def stop(self, *, remove: bool | None = None) -> None:
        """Stop Dovecot and the SMTP server (by PID file) and, by default, remove the
        directory if ``start()`` made it.  Safe to call twice."""
        atexit.unregister(self._stop_at_exit)
        if not self.directory.exists():
            return
        proc = _run_script("stop", str(self.directory))
        if proc.returncode != 0:
            raise MailStackError(f"mailstack.sh stop failed: {proc.stderr.strip()}")
        if (self._owns_directory if remove is None else remove) and self.directory.exists():
            shutil.rmtree(self.directory)

    def _stop_at_exit(self) -> None:
        """Last resort when the interpreter exits without ``stop()``: leave no daemons."""
        _run_script("stop", str(self.directory))

    def __enter__(self) -> MailStack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"<MailStack {self.directory} imap={self.imap_port} imaps={self.imaps_port}"
            f" smtp={self.smtp_port} smtps={self.smtps_port}>"
        )

    def status(self) -> dict[str, bool]:
        """Which parts run: ``{"dovecot": bool, "smtpd": bool}``."""
        out = _run_script("status", str(self.directory)).stdout
        return {
            name: bool(re.search(rf"^{name}:\s+running", out, re.MULTILINE))
            for name in ("dovecot", "smtpd")
        }

    def stop_dovecot(self, *, crash: bool = False) -> None:
        """Stop Dovecot only; the SMTP server stays up and answers DATA with 451.

        Graceful by default (clients get ``BYE Server shutting down``; takes about 1.2 s,
        Dovecot's master pauses 1 s on exit).  ``crash=True`` SIGKILLs every Dovecot
        process at once: clients just see the connection close, in about 50 ms.
        """
        args = ["stop-dovecot", str(self.directory)] + (["--kill"] if crash else [])
        self._script(*args)

    def start_dovecot(self) -> None:
        """Start Dovecot again on the same ports; returns once IMAP and IMAPS accept."""
        self._script("start-dovecot", str(self.directory))

    def restart_dovecot(self, *, crash: bool = False) -> None:
        """``stop_dovecot(crash=crash)`` then ``start_dovecot()``.  Mail is kept."""
        self.stop_dovecot(crash=crash)
        self.start_dovecot()

    # ------------------------------------------------------------------ users

    def address(self, user: str) -> str:
        """USER as an address: a bare local part gets ``@domain``, an address stays as is."""
        return user if "@" in user else f"{user}@{self.domain}"

    def add_user(self, local: str) -> str:
        """Create mailbox LOCAL@domain (password ``self.password``) and return the address.

        Each user is a file of its own (DIR/users.d/ADDRESS) that Dovecot and the SMTP
        server read at the first lookup, so the mailbox can be used at once.  Idempotent.
        """
        out = self._script("add-user", str(self.directory), local)
        return out.strip().splitlines()[-1]

    def new_user(self, prefix: str = "owner") -> str:
        """A fresh mailbox ``PREFIX-<random>@domain`` that no other test shares."""
        return self.add_user(f"{prefix}-{secrets.token_hex(4)}")

    # ------------------------------------------------------------------ SMTP

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the stack's self-signed certificate only."""
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context(cafile=self.cafile)
        return self._ssl_context

    def deliver(
        self,
        raw: bytes,
        mail_from: str,
        rcpts: str | Iterable[str],
        *,
        implicit_tls: bool = False,
        login: str | None = None,
        timeout: float = 10.0,
    ) -> dict[str, tuple[int, bytes]]:
        """Send RAW through the stack's SMTP server; return smtplib's refused recipients.

        STARTTLS (verified against ``cafile``) on ``smtp_port``, or implicit TLS on
        ``smtps_port``; AUTH as LOGIN (a user) when given.  Bare LF line ends become CRLF.
        The server answers only after Dovecot stored the message, so on return it is in
        the mailbox.  smtplib's exceptions (refused recipients, DATA errors, disconnects)
        pass through unchanged.
        """
        recipients = [self.address(r) for r in ([rcpts] if isinstance(rcpts, str) else rcpts)]
        data = re.sub(rb"\r?\n", b"\r\n", raw)
        context = self.ssl_context()
        smtp: smtplib.SMTP
        if implicit_tls:
            smtp = smtplib.SMTP_SSL(self.host, self.smtps_port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.smtp_port, timeout=timeout)
        with smtp:
            if not implicit_tls:
                smtp.starttls(context=context)
            if login is not None:
                smtp.login(self.address(login), self.password)
            return smtp.sendmail(mail_from, recipients, data)

    def smtp_faults(
        self,
        *,
        code: int | None = None,
        count: int = 1,
        text: str | None = None,
        drop_after_delivery: int = 0,
        stall: float = 0.0,
    ) -> None:
        """Set the SMTP server's fault queue (replacing any left), used one per DATA.

        CODE (4xx/5xx): the next COUNT DATA commands get ``CODE TEXT`` and nothing is
        delivered (421 also closes the connection).  Then DROP_AFTER_DELIVERY messages
        are delivered and logged, after which the server waits STALL seconds (at most
        60) and closes the connection without answering: the ambiguous outcome.
        DATA commands after the queue is used up are served normally.
        """
        queue: list[dict[str, Any]] = []
        if code is not None:
            if not 400 <= code <= 599:
                raise ValueError(f"SMTP fault code must be 4xx or 5xx, not {code}")
            reply = text or (
                "4.3.0 injected temporary failure"
                if code < 500
                else "5.3.0 injected permanent failure"
            )
            if "\r" in reply or "\n" in reply:
                raise ValueError("SMTP fault text must be one line")
            queue += [{"action": "reply", "code": code, "text": reply}] * count
        if not 0.0 <= stall <= 60.0:
            raise ValueError("stall must be between 0 and 60 seconds")
        queue += [{"action": "drop", "stall": stall}] * drop_after_delivery
        self._write_faults(queue)

    def clear_smtp_faults(self) -> None:
        """Back to normal SMTP service."""
        self._write_faults([])

    def pending_smtp_faults(self) -> list[dict[str, Any]]:
        """The fault actions not used yet."""
        try:
            spec = json.loads((self.directory / "faults.json").read_text())
        except FileNotFoundError:
            return []
        return list(spec.get("data") or [])

    def _write_faults(self, queue: list[dict[str, Any]]) -> None:
        path = self.directory / "faults.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"data": queue}))
        tmp.replace(path)  # atomic: the server never reads half a file

    def smtp_log(self, rcpt: str | None = None) -> list[dict[str, Any]]:
        """Messages the SMTP server delivered, oldest first, optionally only those to RCPT.

        Each entry has ``mail_from, rcpts, message_id, subject, size, auth, tls, port,
        time, fault`` (``fault`` is ``"drop"`` when the client never got an answer).
        """
        path = self.directory / "log" / "smtp.jsonl"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        entries = [json.loads(line) for line in lines if line.strip()]
        if rcpt is None:
            return entries
        want = self.address(rcpt)
        return [e for e in entries if want in (r.lower() for r in e["rcpts"])]

    # ------------------------------------------------------------------ OAuth2

    def oauth_client(self, user: str, **options: Any) -> str:
        """Register a new OAuth2 client at the stack's oauthd.py whose sign-ins are USER's.

        OPTIONS: ``client_secret``, ``access_ttl`` (seconds), ``device_polls`` (polls
        answered ``authorization_pending`` before the device grant), ``slow_down`` (answer
        ``slow_down`` once), ``interval`` (device poll interval it asks for),
        ``rotate_refresh`` (a new refresh token with every refresh).  Returns the client_id.
        """
        client_id = f"client-{secrets.token_hex(6)}"
        self._oauth("/admin/client", {"client_id": client_id, "user": self.address(user),
                                      **options})
        return client_id

    def oauth_grant(self, client_id: str) -> str:
        """A refresh token for CLIENT_ID's user, as if they had just signed in."""
        return str(self._oauth("/admin/grant", {"client_id": client_id})["refresh_token"])

    def oauth_revoke(self, client_id: str, what: str = "all") -> int:
        """Revoke CLIENT_ID's ``access`` or ``refresh`` tokens (or ``all``); returns how many."""
        return int(self._oauth("/admin/revoke", {"client_id": client_id, "what": what})["revoked"])

    def oauth_stats(self, client_id: str) -> dict[str, Any]:
        """``{"stats": {event: count}, "issued": [every token issued]}`` for CLIENT_ID."""
        return self._oauth(f"/admin/stats?client_id={client_id}", None)

    def _oauth(self, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.oauth_url + path, data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            result: dict[str, Any] = json.loads(resp.read())
        return result

    # ------------------------------------------------------------------ IMAP

    def imap(
        self,
        user: str,
        *,
        tls: bool = False,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> IMAPClient:
        """A logged-in IMAPClient for USER (plain IMAP, or IMAPS verified with ``cafile``).

        Use it as a context manager (``with stack.imap(u) as c:``) so it logs out.
        imapclient's LoginError passes through on a wrong password.
        """
        client = IMAPClient(
            self.host,
            port=self.imaps_port if tls else self.imap_port,
            ssl=tls,
            ssl_context=self.ssl_context() if tls else None,
            timeout=timeout,
        )
        try:
            client.login(self.address(user), self.password if password is None else password)
        except BaseException:
            client.shutdown()
            raise
        return client

    def append(
        self,
        user: str,
        folder: str,
        raw: bytes,
        flags: Sequence[str | bytes] = (),
        msg_time: datetime | None = None,
    ) -> int | None:
        """APPEND RAW to USER's FOLDER (created if missing); return its UID (APPENDUID)."""
        with self.imap(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=tuple(flags), msg_time=msg_time)
        text = response if isinstance(response, bytes) else str(response).encode()
        match = re.search(rb"APPENDUID \d+ (\d+)", text)
        return int(match.group(1)) if match else None

    def message_count(self, user: str, folder: str = "INBOX") -> int:
        """Number of messages in USER's FOLDER (IMAP STATUS)."""
        with self.imap(user) as client:
            return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])

    def wait_for_count(self, user: str, folder: str, count: int, *, timeout: float = 5.0) -> int:
        """Poll until USER's FOLDER holds at least COUNT messages; return the count.

        For mail that code under test sends in the background.  Raises MailStackError
        after TIMEOUT seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            n = self.message_count(user, folder)
            if n >= count:
                return n
            if time.monotonic() >= deadline:
                raise MailStackError(
                    f"{user} {folder}: {n} messages after {timeout} s, wanted {count}"
                )
            time.sleep(0.05)

    def fetch_all(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """Every message in USER's FOLDER as stored (RFC822 bytes), in UID order."""
        with self.imap(user) as client:
            client.select_folder(folder, readonly=True)
            uids = sorted(client.search("ALL"))
            if not uids:
                return []
            data = client.fetch(uids, [b"BODY.PEEK[]"])
            return [data[uid][b"BODY[]"] for uid in uids]

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """USER's FOLDER's UIDVALIDITY, as IMAP reports it."""
        with self.imap(user) as client:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def change_uidvalidity(self, user: str, folder: str = "INBOX", new: int | None = None) -> int:
        """Give USER's FOLDER a new UIDVALIDITY (default: the old one + 1) and return it.

        Done with ``doveadm mailbox update --uid-validity`` and checked over IMAP.  The
        messages keep their UIDs.  A session that has FOLDER selected is disconnected by
        Dovecot on its next command ("IMAP session state is inconsistent, please relogin").
        """
        old = self.uidvalidity(user, folder)
        value = new if new is not None else (old % 0xFFFFFFFF) + 1
        if not 0 < value <= 0xFFFFFFFF or value == old:
            raise ValueError(f"new UIDVALIDITY must be a 32-bit value other than {old}")
        self.doveadm(
            "mailbox", "update", "-u", self.address(user), "--uid-validity", str(value), folder
        )
        seen = self.uidvalidity(user, folder)
        if seen != value:
            raise MailStackError(f"UIDVALIDITY of {user} {folder} is {seen}, not {value}")
        return value

    # ------------------------------------------------------------------ doveadm

    def doveadm(self, *args: str, check: bool = True) -> str:
        """Run ``doveadm -c DIR/dovecot.conf ARGS...`` and return its stdout.

        Raises MailStackError on a non-zero exit unless CHECK is false.
        """
        doveadm = shutil.which("doveadm", path=_SEARCH_PATH) or "doveadm"
        cmd = [doveadm, "-c", str(self.directory / "dovecot.conf"), *args]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=DOVEADM_TIMEOUT_S, check=False
        )
        if check and proc.returncode != 0:
            raise MailStackError(
                f"{shlex.join(cmd)} failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()}"
            )
        return proc.stdout

    def kick(self, user: str) -> bool:
        """Disconnect all of USER's IMAP sessions (they get ``BYE``); False if none."""
        cmd = ("kick", self.address(user))
        out = self.doveadm(*cmd, check=False)
        if "kicked connections" in out:
            return True
        if "no users kicked" in out:
            return False
        raise MailStackError(f"doveadm kick {self.address(user)}: unexpected output {out!r}")

    # ------------------------------------------------------------------ internals

    def _script(self, *args: str) -> str:
        proc = _run_script(*args)
        if proc.returncode != 0:
            raise MailStackError(
                f"mailstack.sh {' '.join(args)} failed (exit {proc.returncode}): "
                f"{proc.stderr.strip()}"
            )
        return proc.stdout


def _run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )


def _read_env(path: Path) -> dict[str, str]:
    """Parse the ``export KEY=value`` lines that mailstack.sh writes."""
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise MailStackError(f"no stack in {path.parent} (missing {path.name})") from exc
    env: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            env[key] = value
    return env


def _check_installed() -> None:
    """Fail with the fix when Dovecot's pieces are missing (never skip: tests need them)."""
    missing = [
        name
        for name, present in (
            ("dovecot", shutil.which("dovecot", path=_SEARCH_PATH) is not None),
            ("doveadm", shutil.which("doveadm", path=_SEARCH_PATH) is not None),
            ("dovecot-imapd", Path("/usr/lib/dovecot/imap").exists()),
            ("dovecot-lmtpd", Path("/usr/lib/dovecot/lmtp").exists()),
            ("openssl", shutil.which("openssl", path=_SEARCH_PATH) is not None),
        )
        if not present
    ]
    if missing:
        raise MailStackError(
            f"not installed: {', '.join(missing)}. The tests need a real Dovecot; "
            "install it with: apt-get install -y dovecot-imapd dovecot-lmtpd openssl"
        )


def _check_traversable(path: Path) -> None:
    """As root, Dovecot's unprivileged processes must reach PATH: every parent needs o+x."""
    if os.geteuid() != 0:
        return
    for parent in [path, *path.parents]:
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise MailStackError(
                f"{parent} is not traversable by other users (mode "
                f"{stat.filemode(parent.stat().st_mode)}), so Dovecot's unprivileged "
                f"processes cannot reach {path}; use a directory under /tmp "
                "(e.g. MAILSTACK_ROOT=/tmp), not pytest's tmp_path"
            )
