"""Health: the heartbeat file, the owner's alerts, and the systemd unit (pure where possible).

* :class:`Health` is the daemon's in-memory picture (last sync per folder, last IDLE
  activity, last digest, recent errors). :func:`write_heartbeat` puts it in
  ``data_dir/heartbeat.json`` atomically (temp file + rename), at most every
  ``HEARTBEAT_SECONDS`` apart from state changes, so a monitor can watch one small file
  and the database is not rewritten for it.
* :func:`daemon_state` says from a heartbeat whether the daemon is running: its pid is
  alive and the heartbeat is fresh (and it did not say it stopped).
* :class:`Alerts` decides when the owner gets an email about a problem: once when it
  starts, again at most once a day while it lasts, and once when it is over. Its state
  is a plain dict kept in the store's ``kv`` table, so a restart does not repeat an alert.
* :class:`ConnectionTrouble` counts failed IMAP connections (refused logins in a row,
  since when nothing works); it is kept in the ``kv`` table too, so that ``run --once``
  from cron adds up to the same alerts as the daemon.
* :func:`digest_delivery` says from the outbox whether the latest digest reached the
  mail server, and :func:`untold_alerts` which open problems the owner could not be
  emailed about (SMTP itself failing): both for the daemon and ``mailbot status``.
* :func:`unit_text` is the systemd user unit ``mailbot install-service`` writes.

Every function here takes ``now``; nothing reads the clock.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .outbox import FAILED, SENT, UNKNOWN

HEARTBEAT_NAME = "heartbeat.json"
HEARTBEAT_SECONDS = 30.0  # the daemon writes the heartbeat at least this often ...
STALE_AFTER = timedelta(seconds=120)  # ... so an older one means it is stuck or gone
MAX_ERRORS = 50
ALERTS_KEY = "alerts"
HEALTH_KEY = "health"
TROUBLE_KEY = "imap_trouble"

# the problems the owner is told about by email
LOGIN, CONNECTION, DIGEST = "login", "connection", "digest"
DIGEST_SEND = "digest_send"  # built, but the mail server did not take it
LOGIN_FAILURES = 3  # consecutive refused logins before the owner is told
NO_CONNECTION = timedelta(hours=1)
# failures further apart than this are not one outage (the machine slept, cron stopped):
# the hour without a connection starts again. Wide enough for an hourly cron job.
STREAK_GAP = timedelta(hours=3)
DIGEST_LATE = timedelta(hours=2)  # a digest still not sent by then is the owner's business
REPEAT = timedelta(days=1)


# --------------------------------------------------------------------------- heartbeat


@dataclass
class Health:
    """What the daemon knows about itself; :meth:`to_dict` is the heartbeat file's content."""

    pid: int
    version: str
    started: datetime
    state: str = "starting"  # starting | watching | reconnecting | stopped
    last_connected: datetime | None = None
    last_sync: dict[str, str] = field(default_factory=dict)  # folder -> ISO time
    last_idle_activity: datetime | None = None
    last_digest: str = ""  # the date of the last digest queued
    last_error: str = ""
    last_error_time: datetime | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)  # problems raised and not yet cleared

    def note_error(self, message: str, now: datetime, level: str = "error") -> None:
        message = message.strip()[:300]
        self.last_error, self.last_error_time = message, now
        self.errors.append({"time": now.isoformat(), "level": level, "message": message})
        del self.errors[:-MAX_ERRORS]

    def note_sync(self, folder: str, now: datetime) -> None:
        self.last_sync[folder] = now.isoformat()

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "version": self.version,
            "started": self.started.isoformat(),
            "updated": now.isoformat(),
            "state": self.state,
            "last_connected": _iso(self.last_connected),
            "last_sync": dict(self.last_sync),
            "last_idle_activity": _iso(self.last_idle_activity),
            "last_digest": self.last_digest or None,
            "last_error": self.last_error or None,
            "last_error_time": _iso(self.last_error_time),
            "errors": list(self.errors),
            "alerts": list(self.alerts),
        }


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d else None


def write_heartbeat(path: Path, data: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON atomically (a reader sees the old or the new)."""
    fd, tmp = tempfile.mkstemp(prefix=".heartbeat-", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, ensure_ascii=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    """The heartbeat, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        return True
    return True


def daemon_state(hb: Mapping[str, Any] | None, now: datetime, alive: bool,
                 stale_after: timedelta = STALE_AFTER) -> tuple[bool, str]:
    """(running?, why) from a heartbeat, the clock, and whether its pid is alive."""
    if hb is None:
        return False, "not running (no heartbeat: the daemon has not run here yet)"
    pid = hb.get("pid")
    try:
        updated = datetime.fromisoformat(str(hb.get("updated")))
    except ValueError:
        return False, "not running (the heartbeat file is damaged)"
    age = now - updated
    if hb.get("state") == "stopped":
        return False, f"not running (stopped at {updated:%Y-%m-%d %H:%M:%S %Z})"
    if not alive:
        return False, f"not running (process {pid} is gone; last heartbeat {_ago(age)} ago)"
    if age > stale_after:
        return False, (f"not running properly: process {pid} is alive but its heartbeat is "
                       f"{_ago(age)} old (stuck?)")
    return True, f"running (pid {pid}, heartbeat {_ago(age)} ago)"


def _ago(age: timedelta) -> str:
    s = max(0, int(age.total_seconds()))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h"
    return f"{s // 86400} days"


def recent_errors(hb: Mapping[str, Any] | None, now: datetime,
                  within: timedelta = timedelta(hours=24)) -> list[dict[str, str]]:
    out = []
    for e in (hb or {}).get("errors", []) or []:
        try:
            when = datetime.fromisoformat(e["time"])
        except (KeyError, TypeError, ValueError):
            continue
        if now - when <= within:
            out.append(e)
    return out


# --------------------------------------------------------------------------- alerts


class Alerts:
    """When to tell the owner about a problem: once, at most daily while it lasts, and its end.

    ``state`` maps a problem to ``{"active", "since", "last_sent", "cleared"}`` (ISO
    times): plain JSON, kept in the store so alerts survive a restart.
    """

    def __init__(self, state: Mapping[str, Any] | None = None, *,
                 repeat: timedelta = REPEAT) -> None:
        self.state: dict[str, dict[str, Any]] = {
            k: dict(v) for k, v in (state or {}).items() if isinstance(v, dict)}
        self.repeat = repeat

    def raise_(self, problem: str, now: datetime, ref: str | None = None) -> bool:
        """The problem is there now. True when the owner should get an email about it.

        ``ref`` names the occurrence (the digest's date): a new one is told at once even
        while the problem is still open, as a day's digest is a new problem each day.
        """
        s = self.state.get(problem)
        if s is None or not s.get("active"):
            self.state[problem] = {"active": True, "since": now.isoformat(),
                                   "last_sent": now.isoformat(), "cleared": None, "ref": ref}
            return True
        last = datetime.fromisoformat(s["last_sent"])
        if now - last >= self.repeat or (ref is not None and s.get("ref") != ref):
            s["last_sent"] = now.isoformat()
            s["ref"] = ref
            return True
        return False

    def clear(self, problem: str, now: datetime) -> bool:
        """The problem is over. True when the owner should get a "recovered" email."""
        s = self.state.get(problem)
        if s is None or not s.get("active"):
            return False
        s["active"] = False
        s["cleared"] = now.isoformat()
        return True

    def active(self) -> list[str]:
        return sorted(p for p, s in self.state.items() if s.get("active"))

    def since(self, problem: str) -> datetime | None:
        s = self.state.get(problem)
        return datetime.fromisoformat(s["since"]) if s and s.get("since") else None

    def to_dict(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self.state.items()}


def no_connection_for(last_connected: datetime | None, started: datetime,
                      now: datetime) -> timedelta:
    """How long the daemon has been without a working connection (counted from its start)."""
    since = max(last_connected, started) if last_connected else started
    return now - since


@dataclass
class ConnectionTrouble:
    """Failed IMAP connections since the last good one (JSON in the ``kv`` table).

    ``auth_failures`` counts refused logins (other failures neither add nor reset it);
    ``failing_since`` is the first failure of the current outage, which starts afresh
    when the last failure is more than ``STREAK_GAP`` ago.
    """

    auth_failures: int = 0
    failing_since: datetime | None = None
    last_failure: datetime | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> ConnectionTrouble:
        d = d or {}

        def when(key: str) -> datetime | None:
            try:
                return datetime.fromisoformat(str(d[key])) if d.get(key) else None
            except ValueError:
                return None

        try:
            auth = max(0, int(d.get("auth_failures") or 0))
        except (TypeError, ValueError):
            auth = 0
        return cls(auth, when("failing_since"), when("last_failure"))

    def to_dict(self) -> dict[str, Any]:
        return {"auth_failures": self.auth_failures, "failing_since": _iso(self.failing_since),
                "last_failure": _iso(self.last_failure)}

    def failed(self, now: datetime, *, auth: bool) -> None:
        if (self.failing_since is None or self.last_failure is None
                or now - self.last_failure > STREAK_GAP or now < self.last_failure):
            self.failing_since = now
        self.last_failure = now
        if auth:
            self.auth_failures += 1

    def connected(self) -> None:
        self.auth_failures, self.failing_since, self.last_failure = 0, None, None

    def without_connection(self, now: datetime) -> timedelta:
        return now - self.failing_since if self.failing_since else timedelta(0)

    def problems(self, now: datetime, *, auth: bool, login_open: bool) -> list[str]:
        """Which alerts this failure (a refused login when ``auth``) calls for."""
        out = []
        if auth and self.auth_failures >= LOGIN_FAILURES:
            out.append(LOGIN)
        if LOGIN not in out and not login_open and self.without_connection(now) >= NO_CONNECTION:
            out.append(CONNECTION)
        return out


@dataclass(frozen=True)
class DigestDelivery:
    """The latest digest's outbox item, as far as the owner's alerts are concerned."""

    day: str
    state: str
    detail: str
    attempts: int
    to: str
    created: datetime


def digest_delivery(items: Iterable[Mapping[str, Any]], now: datetime, *,
                    late: timedelta = DIGEST_LATE,
                    window: timedelta = REPEAT) -> tuple[bool | None, DigestDelivery | None]:
    """Did the latest digest leave? From the outbox items (any kinds).

    ``(False, d)``: it was sent (the problem, if any, is over). ``(True, d)``: the mail
    server refused it, or it is still not sent (queued for a retry, or its outcome
    unknown) ``late`` after it was queued. ``(None, d)``: no verdict yet, or the digest is
    older than ``window`` (told about already; a later digest settles it).
    """
    digests = [i for i in items if i.get("kind") == "digest"]
    if not digests:
        return None, None
    item = max(digests, key=lambda i: str(i["created"]))
    rcpts = item.get("rcpts") or [""]
    d = DigestDelivery(day=str(item.get("ref") or item["created"][:10]),
                       state=str(item["state"]), detail=str(item.get("detail") or ""),
                       attempts=int(item.get("attempts") or 0), to=str(rcpts[0]),
                       created=datetime.fromisoformat(item["created"]))
    if d.state == SENT:
        return False, d
    age = now - d.created
    if age > window:
        return None, d
    if d.state == FAILED or age >= late:
        return True, d
    return None, d


def _hours(t: timedelta) -> str:
    h = t.total_seconds() / 3600
    return f"{h:.0f} hours" if h >= 1.5 else "an hour"


def digest_send_detail(d: DigestDelivery, now: datetime) -> str:
    """The first paragraph of the owner's email about a digest that did not leave."""
    answer = d.detail.strip() or "no answer"
    if d.state == FAILED:
        return (f"The mail server would not send the morning list for {d.day} to {d.to}. "
                f"Its answer: {answer}\n\n"
                "This email comes from the same account to the same address, so that "
                "address works: most likely the server objected to the list itself (as "
                "spam, for its size) or to how much was sent (a sending limit). The answer "
                "above says which; your mail provider's help pages explain its code. If it "
                "speaks of an address (user unknown, recipient or sender rejected, relay "
                "denied), check [digest] to and [owner] addresses in mailbot's config.\n\n"
                "I will not try that list again; the next one comes at the usual time.")
    if d.state == UNKNOWN or d.state == "sending":
        return (f"The connection to the mail server broke while the list for {d.day} was "
                f"being sent to {d.to}, and {_hours(now - d.created)} later I still cannot "
                f"tell whether it arrived ({answer}).")
    return (f"The morning list for {d.day} has still not gone out to {d.to} after "
            f"{d.attempts} tries in {_hours(now - d.created)}. The last answer: {answer}\n"
            "I keep trying.")


def untold_alerts(items: Iterable[Mapping[str, Any]], problems: Iterable[str]) -> dict[str, str]:
    """Open problems whose email to the owner did not go out: problem -> why not.

    This is how ``mailbot status`` shows a problem when SMTP itself is what fails.
    """
    latest: dict[str, Mapping[str, Any]] = {}
    for i in items:
        ref = str(i.get("ref") or "")
        if i.get("kind") != "alert" or not ref.endswith(":problem"):
            continue
        problem = ref[: -len(":problem")]
        if problem not in latest or str(i["created"]) >= str(latest[problem]["created"]):
            latest[problem] = i
    out = {}
    for p in problems:
        alert = latest.get(p)
        if alert is not None and alert["state"] != SENT:
            detail = str(alert.get("detail") or "").strip()
            out[p] = f"{alert['state']}: {detail}" if detail else str(alert["state"])
    return out


ALERT_TEXT: dict[str, tuple[str, str]] = {
    LOGIN: ("I cannot log in to your mailbox",
            "The mail server keeps refusing my login ({detail}).\n\n"
            "Until this is fixed I cannot see your mail, so there will be no morning list. "
            "Check the password in mailbot's config (for Gmail and iCloud, an app password), "
            "then run 'mailbot check'. I keep trying by myself."),
    CONNECTION: ("I have not reached your mailbox for an hour",
                 "I could not connect to your mail server since {since} ({detail}).\n\n"
                 "Perhaps the network or the server is down. I keep trying by myself; "
                 "'mailbot check' on the machine that runs me tells more."),
    DIGEST: ("today's list could not be made",
             "I could not build this morning's list ({detail}).\n\n"
             "'mailbot status' and the log on the machine that runs me tell more."),
    DIGEST_SEND: ("your morning list did not reach you",
                  "{detail}\n\n"
                  "'mailbot outbox' lists what waits to be sent; 'mailbot status' and the "
                  "log on the machine that runs me tell more."),
}

RECOVERED_TEXT: dict[str, tuple[str, str]] = {
    LOGIN: ("I can log in to your mailbox again",
            "The login works again; I am catching up with your mail."),
    CONNECTION: ("I can reach your mailbox again",
                 "The connection works again; I am catching up with your mail."),
    DIGEST: ("the morning list works again",
             "This morning's list was built and queued as usual."),
    DIGEST_SEND: ("your morning list reaches you again",
                  "The latest morning list went out to you as usual."),
}


def alert_message(problem: str, *, recovered: bool = False, detail: str = "",
                  since: datetime | None = None) -> tuple[str, str]:
    """(subject, body) of the email about ``problem``."""
    subject, body = (RECOVERED_TEXT if recovered else ALERT_TEXT)[problem]
    when = f"{since:%Y-%m-%d %H:%M} UTC" if since else "a while"
    return subject, body.format(detail=detail.strip() or "no detail", since=when)


# --------------------------------------------------------------------------- systemd


def default_unit_path(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "systemd" / "user" / "mailbot.service"


def _systemd_quote(arg: str) -> str:
    """One argument of ExecStart: specifiers (%) escaped, quoted when it has spaces."""
    arg = arg.replace("%", "%%")
    if not arg or any(c in arg for c in " \t\"'\\;$"):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


# where the unit reads environment variables from (systemd's %h is the home directory)
SERVICE_ENV_FILE = "%h/.config/mailbot/env"


def unit_text(python: str, config: Path, *, workdir: Path | None = None,
              extra_args: Sequence[str] = ()) -> str:
    """The systemd user unit that runs ``python -m mailbot --config CONFIG run``."""
    cmd = " ".join(_systemd_quote(a) for a in
                   (python, "-m", "mailbot", "--config", str(config), *extra_args, "run"))
    lines = [
        "# written by 'mailbot install-service'",
        "[Unit]",
        "Description=mailbot: which customers to write to, from your own mailbox",
        "StartLimitIntervalSec=600",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={cmd}",
    ]
    if workdir is not None:
        lines.append(f"WorkingDirectory={_systemd_quote(str(workdir))}")
    lines += [
        "Environment=PYTHONUNBUFFERED=1",
        "# for password_env: VAR=value lines, mode 0600 (optional)",
        f"EnvironmentFile=-{SERVICE_ENV_FILE}",
        "Restart=on-failure",
        "RestartSec=30",
        "# 78: a configuration problem; restarting cannot fix it",
        "RestartPreventExitStatus=78",
        "TimeoutStopSec=30",
        "# the log goes to the journal: journalctl --user -u mailbot",
        "StandardOutput=journal",
        "StandardError=journal",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


ENABLE_HINT = """\
To start it now and at every boot:

  systemctl --user daemon-reload && systemctl --user enable --now mailbot

To keep it running when you are logged out (once per machine):

  loginctl enable-linger {user}

Then 'mailbot status' shows how it is doing, and 'journalctl --user -u mailbot' its log."""
