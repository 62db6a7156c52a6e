"""The long-running daemon: sync, IDLE watch, reconnects, signals.

One thread owns the IMAP session and the store (the single writer). Scheduled
jobs (the morning digest) do not touch the store from their own thread: they
put a request on ``self.jobs`` and the main loop runs it between IDLE slices,
so it is seen within a second.
"""

from __future__ import annotations

import base64
import logging
import os
import queue
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from . import __version__, morning, outbox
from .classify import Identity
from .commands import CommandHandler
from .config import Settings
from .digest import new_token
from .errors import AuthError, ConfigError, MailServerError
from .health import (
    ALERTS_KEY,
    CONNECTION,
    DIGEST,
    DIGEST_SEND,
    HEALTH_KEY,
    HEARTBEAT_NAME,
    HEARTBEAT_SECONDS,
    LOGIN,
    TROUBLE_KEY,
    Alerts,
    ConnectionTrouble,
    Health,
    alert_message,
    digest_delivery,
    digest_send_detail,
    write_heartbeat,
)
from .imap import ImapSession
from .ingest import FolderSync, SyncStats
from .notes import build_notice
from .scheduling import due_digest
from .smtp import SendResult, send_raw_sync
from .store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def identity_of(settings: Settings) -> Identity:
    return Identity(
        owner_addresses=frozenset(a.lower() for a in settings.owner.addresses),
        internal_domains=frozenset(d.lower() for d in settings.owner.internal_domains),
        owner_name=settings.owner.name,
    )


class Backoff:
    """Capped exponential backoff with full jitter: 1, 2, 4 ... cap seconds."""

    def __init__(self, cap: float, base: float = 1.0, rng: random.Random | None = None) -> None:
        self.cap, self.base, self.attempt = cap, base, 0
        self.rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** self.attempt))
        self.attempt += 1
        return max(0.5, self.rng.uniform(ceiling / 2, ceiling))

    def reset(self) -> None:
        self.attempt = 0


class Progress:
    """A progress bar on a TTY (tqdm), plain log lines with count and rate otherwise."""

    def __init__(self, label: str, total: int, *, tty: bool | None = None,
                 every_seconds: float = 5.0, tick: Callable[[], None] | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.tick = tick
        self.started = self.last_log = time.monotonic()
        self.every = every_seconds
        self.bar = None
        if tty if tty is not None else sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit="msg", unit_scale=True, leave=True)

    def __call__(self, n: int) -> None:
        self.done += n
        if self.tick is not None:
            self.tick()
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last_log >= self.every:
            self.last_log = now
            rate = self.done / max(now - self.started, 1e-6)
            log.info("%s: %d/%d messages (%.0f/s)", self.label, self.done, self.total, rate)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elapsed = time.monotonic() - self.started
        if self.done:
            log.info("%s: %d messages in %.1f s (%.0f/s)", self.label, self.done, elapsed,
                     self.done / max(elapsed, 1e-6))


class _ErrorLog(logging.Handler):
    """Keeps mailbot's warnings and errors in the heartbeat (for ``mailbot status``)."""

    def __init__(self, health: Health, clock: Clock) -> None:
        super().__init__(logging.WARNING)
        self.health, self.clock = health, clock

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.health.note_error(record.getMessage(), self.clock(), record.levelname.lower())
        except Exception:  # a log handler must never break the caller
            self.handleError(record)


class Daemon:
    def __init__(self, settings: Settings, store: Store, *, clock: Clock = utcnow) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.identity = identity_of(settings)
        self.stop_event = threading.Event()
        self.jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self.session = ImapSession(settings.imap)
        self.folders: list[str] = []
        self.last_error = ""
        self.schedule = morning.schedule_of(settings)
        self.drafter = morning.make_drafter(settings)
        self.scheduler: Any = None
        self.started = clock()
        self.health = Health(pid=os.getpid(), version=__version__, started=self.started)
        self.heartbeat_path = store.data_dir / HEARTBEAT_NAME
        self._last_beat = float("-inf")
        kv = store.record("kv", ALERTS_KEY)
        self.alerts = Alerts(kv["value"] if kv else None)
        # kept in the store, so that failing `run --once` runs (cron) add up to an alert
        kv = store.record("kv", TROUBLE_KEY)
        self.trouble = ConnectionTrouble.from_dict(kv["value"] if kv else None)
        digests = [r["date"] for r in store.records("digests") if r.get("message_id")]
        self.health.last_digest = max(digests, default="")

    # -- control

    def stop(self, *_: object) -> None:
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("received %s; stopping", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _sleep(self, seconds: float) -> None:
        """Wait (until stopped), still writing the heartbeat on time."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.stop_event.wait(min(left, HEARTBEAT_SECONDS))
            self._beat()

    # -- health: heartbeat file and alerts

    def _beat(self, *, force: bool = False, state: str | None = None) -> None:
        """Write the heartbeat file if it is due (every 30 s) or the state changed."""
        if state is not None and state != self.health.state:
            self.health.state = state
            force = True
        mono = time.monotonic()
        if not force and mono - self._last_beat < HEARTBEAT_SECONDS:
            return
        self._last_beat = mono
        self.health.alerts = self.alerts.active()
        try:
            write_heartbeat(self.heartbeat_path, self.health.to_dict(self.clock()))
        except OSError as exc:
            log.warning("cannot write the heartbeat file %s: %s", self.heartbeat_path,
                        exc.strerror)

    def _save_health(self) -> None:
        """The slowly changing part of the health in the kv table (for the next commit)."""
        h = self.health
        doc = {"key": HEALTH_KEY, "last_connected": h.to_dict(self.clock())["last_connected"],
               "last_digest": h.last_digest, "last_error": h.last_error,
               "last_error_time": h.last_error_time.isoformat() if h.last_error_time else None}
        if self.store.record("kv", HEALTH_KEY) != doc:
            self.store.put_record("kv", doc)

    def _tell(self, problem: str, now: datetime, *, recovered: bool = False,
              detail: str = "", since: datetime | None = None) -> None:
        """Email the owner about a problem (or its end), at once, by SMTP alone.

        When SMTP itself fails, the alert stays in the outbox (retried if it can be) and
        the problem is in the log and in ``mailbot status``.
        """
        subject, body = alert_message(problem, recovered=recovered, detail=detail,
                                      since=since or self.alerts.since(problem))
        owner = self.settings.owner
        msg = build_notice(subject=subject, body=body, owner_name=owner.name,
                           owner_address=owner.address, token=new_token(), now=now,
                           tz=owner.tz, domain=owner.address.rsplit("@", 1)[1])
        mid = outbox.enqueue(self.store, msg, kind="alert", mail_from=owner.address,
                             rcpts=[self.settings.digest.to], now=now, owner_only=True,
                             ref=f"{problem}:{'ok' if recovered else 'problem'}")
        self.store.put_record("kv", {"key": ALERTS_KEY, "value": self.alerts.to_dict()})
        self.store.commit()
        try:
            outbox.process(self.store, self._send, lambda _where, _mid: False, now,
                           unknown_wait=timedelta.max, only=lambda i: i["message_id"] == mid)
        except MailServerError as exc:  # the outbox retries it
            log.warning("could not send an alert yet: %s", exc)
        item = self.store.record("outbox", mid) or {}
        state = item.get("state")
        if state == outbox.SENT:
            log.info("told the owner: %s", subject)
        else:
            log.log(logging.WARNING if state == outbox.QUEUED else logging.ERROR,
                    "could not email the owner %r (%s; the alert is %s: %s); "
                    "'mailbot status' shows the problem", subject, problem, state,
                    item.get("detail"))
        self._beat(force=True)  # rare: once per problem per day

    def _raise(self, problem: str, now: datetime, detail: str, *, ref: str | None = None,
               since: datetime | None = None) -> None:
        if self.alerts.raise_(problem, now, ref):
            self._tell(problem, now, detail=detail, since=since)

    def _clear(self, problem: str, now: datetime) -> None:
        if self.alerts.clear(problem, now):
            self._tell(problem, now, recovered=True)

    def _save_trouble(self) -> None:
        doc = {"key": TROUBLE_KEY, "value": self.trouble.to_dict()}
        if self.store.record("kv", TROUBLE_KEY) != doc:
            self.store.put_record("kv", doc)  # committed with the run's next commit

    def _connected(self) -> None:
        now = self.clock()
        self.health.last_connected = now
        self.trouble.connected()
        self._save_trouble()
        self._clear(LOGIN, now)
        self._clear(CONNECTION, now)

    def _failed(self, exc: MailServerError, *, auth: bool) -> None:
        """After a failed connection: alert when it lasts, send what waits for the owner."""
        now = self.clock()
        self.trouble.failed(now, auth=auth)
        self._save_trouble()
        for problem in self.trouble.problems(now, auth=auth,
                                             login_open=LOGIN in self.alerts.active()):
            self._raise(problem, now, str(exc), since=self.trouble.failing_since
                        if problem == CONNECTION else None)
        self._flush_without_imap()
        self._beat(state="reconnecting")

    # -- main loops

    def run(self, *, once: bool = False) -> int:
        """Run until stopped (or one full sync with ``once``). Returns the exit status."""
        backoff = Backoff(cap=float(self.settings.ingest.reconnect_max_seconds))
        errors = _ErrorLog(self.health, self.clock)
        logging.getLogger("mailbot").addHandler(errors)
        self._beat(state="starting", force=True)
        try:
            outbox.recover_after_crash(self.store, self.clock())
            if not once:
                self._start_scheduler()
            while not self.stop_event.is_set():
                try:
                    self.session.connect()
                    self._connected()
                    self.folders = self._folders()
                    self.sync_all(initial=True)
                    backoff.reset()
                    self.handle_commands()
                    self.morning_tasks()
                    if once:
                        return 0
                    self._beat(state="watching")
                    self.watch()
                except AuthError as exc:
                    self.last_error = str(exc)
                    log.error("%s", exc)
                    self._failed(exc, auth=True)
                    if once:
                        return 2
                    # a wrong password will not fix itself quickly: wait the full cap
                    self._sleep(backoff.cap if self.trouble.auth_failures > 1
                                else backoff.next_delay())
                except MailServerError as exc:
                    self.last_error = str(exc)
                    if once:
                        log.error("%s", exc)
                        self._failed(exc, auth=False)
                        return 1
                    delay = backoff.next_delay()
                    log.warning("%s; reconnecting in %.0f s", exc, delay)
                    self._failed(exc, auth=False)
                    self._sleep(delay)
                finally:
                    self._save_health()
                    self.store.commit()
                    self.session.close()
            return 0
        except ConfigError:
            self.store.commit()
            raise
        finally:
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=False)
            self._beat(state="stopped", force=True)
            logging.getLogger("mailbot").removeHandler(errors)

    # -- the morning digest and the outbox

    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.scheduler = BackgroundScheduler(timezone=self.settings.owner.tz)
        # the job only asks the main loop to act: the main thread is the single writer
        self.scheduler.add_job(lambda: self.jobs.put(self.morning_tasks),
                               self.schedule.trigger(), id="digest", coalesce=True,
                               misfire_grace_time=int(self.schedule.grace.total_seconds()))
        self.scheduler.start()
        job = self.scheduler.get_job("digest")
        log.info("next digest at %s", job.next_run_time if job else "never")

    def morning_tasks(self) -> None:
        """Queue the digest if one is due, then send what the outbox holds."""
        now = self.clock()
        day = due_digest(self.schedule, now, morning.sent_dates(self.store))
        if day is not None:
            try:
                mid = morning.run_digest(self.store, self.settings, now, self.drafter, day)
            except ConfigError:
                raise
            except Exception as exc:  # any failure to build it is the owner's business
                log.error("could not build the digest for %s: %s", day, exc)
                self._raise(DIGEST, now, f"{type(exc).__name__}: {exc}")
            else:
                if mid:
                    self.health.last_digest = day.isoformat()
                self._clear(DIGEST, now)
        self.flush_outbox()

    def handle_commands(self) -> None:
        """Act on the owner's replies to drafts (reply-to-send)."""
        if not any(r["state"] == "pending" for r in self.store.records("commands")):
            return
        handler = CommandHandler(
            self.settings, self.store, self.session, self.folders[1],
            sent_wait=timedelta(seconds=self.settings.send.sent_wait_seconds))
        handler.process_pending(self.clock())

    def flush_outbox_once(self) -> None:
        """Connect, send what the outbox holds, disconnect (for the CLI).

        Without IMAP, the mail to the owner still goes (it needs only SMTP); the
        IMAP error is raised afterwards.
        """
        try:
            self.session.connect()
        except MailServerError:
            self._flush_without_imap()
            raise
        try:
            self.folders = self._folders()
            self.flush_outbox()
        finally:
            self.session.close()

    def flush_outbox(self) -> None:
        if len(self.folders) < 2:  # IMAP is not (yet) there
            self._flush_without_imap()
            return
        outbox.process(self.store, self._send, self._find, self.clock())
        self._check_digest_delivery()
        self._file_sent_notes()

    def _flush_without_imap(self) -> None:
        """Send the owner's queued mail by SMTP alone; unknown outcomes wait for IMAP."""
        now = self.clock()
        if any(i.get("owner_only") and i["state"] == outbox.QUEUED
               and i["not_before"] <= now.isoformat()
               for i in self.store.records("outbox")):
            try:
                # a note to a customer waits for IMAP: its undo window needs the owner's
                # inbox and its copy goes to Sent; mail to the owner needs only SMTP
                outbox.process(self.store, self._send, lambda _where, _mid: False, now,
                               unknown_wait=timedelta.max,
                               only=lambda item: bool(item.get("owner_only")))
            except MailServerError as exc:
                log.warning("could not send the mail waiting for you: %s", exc)
        self._check_digest_delivery()

    def _check_digest_delivery(self) -> None:
        """Tell the owner when the latest digest was refused or is long overdue; and its end."""
        now = self.clock()
        verdict, d = digest_delivery(self.store.records("outbox"), now)
        if verdict and d is not None:
            self._raise(DIGEST_SEND, now, digest_send_detail(d, now), ref=d.day)
        elif verdict is False:
            self._clear(DIGEST_SEND, now)

    def _file_sent_notes(self) -> None:
        """Put a copy of each sent note in the owner's Sent folder, unless the provider does.

        Whether it does is learned once per account: after the first note, look for it
        in Sent for a few seconds; found means the provider files SMTP mail itself.
        """
        sent = self.folders[1]
        for item in self.store.records("outbox"):
            if item["kind"] != "note" or item["state"] != outbox.SENT or item.get("filed"):
                continue
            flag = self.store.record("kv", "provider_files_sent")
            if flag is None:
                found = False
                for _ in range(5):
                    if self._find("sent", item["message_id"]):
                        found = True
                        break
                    self._sleep(1.0)
                flag = {"key": "provider_files_sent", "value": found}
                self.store.put_record("kv", flag)
                log.info("the provider %s sent mail in Sent by itself",
                         "files" if found else "does not file")
            if not flag["value"]:
                raw = base64.b64decode(item["raw"])
                self.session.append(sent, raw, flags=("\\Seen",), when=self.clock())
            item["filed"] = True
            self.store.put_record("outbox", item)
            self.store.commit()
        self._tell_unknown_notes()

    def _tell_unknown_notes(self) -> None:
        """Tell the owner, once, about a note that failed (5xx) or whose delivery is unknown.

        An unknown note is never resent: the server may have delivered it.
        """
        now = self.clock()
        for item in self.store.records("outbox"):
            if item["kind"] != "note" or item.get("told"):
                continue
            to = item["rcpts"][0]
            if item["state"] == outbox.FAILED:
                subject = f"your note to {to} could not be sent"
                body = (f"The mail server refused your note to {to}: {item.get('detail', '')}\n"
                        "Nothing was sent. Check the address, or write from your mail program.")
            elif (item["state"] == outbox.UNKNOWN and
                  now - datetime.fromisoformat(item["updated"]) >= timedelta(minutes=5)):
                subject = "I am not sure a note was delivered"
                body = (f"The connection dropped while your note to {to} was being sent, so "
                        "it may or may not have arrived. I will not send it again by myself. "
                        "If you want to be sure, write to them from your mail program.")
            else:
                continue
            CommandHandler(self.settings, self.store, self.session, self.folders[1]).notice(
                subject, body, item["message_id"], now)
            item["told"] = True
            self.store.put_record("outbox", item)
            self.store.commit()

    def _send(self, raw: bytes, mail_from: str, rcpts: Any,
              before_data: Callable[[], None]) -> SendResult:
        return send_raw_sync(self.settings.smtp, raw, mail_from, list(rcpts),
                             before_data=before_data)

    def _find(self, where: str, message_id: str) -> bool:
        folder = self.folders[0] if where == "inbox" else self.folders[1]
        self.session.select(folder)
        return bool(self.session.search_message_id(message_id))

    def _folders(self) -> list[str]:
        imap = self.settings.imap
        self.session.require_folder(imap.inbox)
        sent = self.session.find_sent(imap.sent)
        extra = list(imap.extra_folders)
        for name in extra:
            self.session.require_folder(name)
        folders = [imap.inbox, sent, *extra]
        return list(dict.fromkeys(folders))

    def _sync(self, folder: str) -> FolderSync:
        ing = self.settings.ingest
        return FolderSync(
            self.session, self.store, folder, self.identity,
            history_days=ing.history_days, batch_size=ing.batch_size,
            body_bytes=ing.body_bytes, clock=self.clock,
            collect_commands=folder == self.folders[0],
        )

    def sync_all(self, *, initial: bool = False, folders: list[str] | None = None) -> SyncStats:
        total = SyncStats()
        for folder in folders or self.folders:
            if self.stop_event.is_set():
                break
            fs = self._sync(folder)
            progress = None
            plan = fs.plan()
            if initial and plan.total > 0:
                progress = Progress(folder, plan.total, tick=self._beat)
            try:
                stats = fs.sync(progress=progress, should_stop=self.stop_event.is_set, plan=plan)
            finally:
                if progress is not None:
                    progress.close()
            self.health.note_sync(folder, self.clock())
            self._beat()
            if stats.seen:
                log.info("%s: %s", folder, stats.summary())
            total.add(stats)
        return total

    def watch(self) -> None:
        """IDLE on the inbox; catch up on every wake-up; poll the other folders regularly."""
        ing = self.settings.ingest
        inbox, others = self.folders[0], self.folders[1:]
        use_idle = self.session.has_idle()
        if not use_idle:
            log.warning("the IMAP server does not support IDLE; polling every 60 s")
        last_poll = last_outbox_check = time.monotonic()
        seen_uidnext = 0
        while not self.stop_event.is_set():
            status = self.session.select(inbox)
            state = self.store.folder_state(inbox)
            # IDLE reports only what arrives after it starts: mail delivered while we
            # were busy (Sent sync, commands, outbox) shows as a higher UIDNEXT here.
            if (state is not None and status.uidnext != seen_uidnext
                    and status.uidnext - 1 > state.last_uid):
                seen_uidnext = status.uidnext
                self.sync_all(folders=[inbox])
                self.handle_commands()
                continue
            seen_uidnext = status.uidnext
            woke = False
            started = time.monotonic()
            if use_idle:
                self.session.idle_start()
                try:
                    while not self.stop_event.is_set() and self.jobs.empty():
                        self._beat()
                        now = time.monotonic()
                        if now - last_outbox_check >= 5:
                            last_outbox_check = now
                            if self._outbox_due():
                                break
                        if now - started >= ing.idle_renew_seconds:
                            break
                        if now - last_poll >= ing.sent_poll_seconds:
                            break
                        if self.session.idle_wait(1.0):
                            woke = True
                            break
                finally:
                    self.session.idle_stop()
            else:
                deadline = started + min(60.0, ing.sent_poll_seconds)
                while (not self.stop_event.is_set() and self.jobs.empty()
                       and time.monotonic() < deadline):
                    self._sleep(1.0)
                self.session.noop()
            self.health.last_idle_activity = self.clock()
            if self.stop_event.is_set():
                break
            self.sync_all(folders=[inbox])
            self.handle_commands()
            if woke or time.monotonic() - last_poll >= ing.sent_poll_seconds:
                self.sync_all(folders=others)
                last_poll = time.monotonic()
            self._run_jobs()
            if self._outbox_due():
                self.flush_outbox()

    def _outbox_due(self) -> bool:
        """Something to send, or an unknown outcome still worth looking for in the mailbox."""
        now = self.clock().isoformat()
        return any((i["state"] == outbox.UNKNOWN and not i.get("told")) or
                   (i["state"] == outbox.QUEUED and i["not_before"] <= now)
                   for i in self.store.records("outbox"))

    def _run_jobs(self) -> None:
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            try:
                job()
            except MailServerError as exc:
                log.warning("scheduled job failed: %s", exc)
