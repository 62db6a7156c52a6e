"""The long-running daemon: sync, IDLE watch, reconnects, signals.

One thread owns the IMAP session and the store (the single writer). Scheduled
jobs (the morning digest) do not touch the store from their own thread: they
put a request on ``self.jobs`` and the main loop runs it between IDLE slices,
so it is seen within a second.
"""

from __future__ import annotations

import base64
import logging
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

from . import morning, outbox
from .classify import Identity
from .commands import CommandHandler
from .config import Settings
from .errors import AuthError, ConfigError, MailServerError
from .imap import ImapSession
from .ingest import FolderSync, SyncStats
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
                 every_seconds: float = 5.0) -> None:
        self.label, self.total, self.done = label, total, 0
        self.started = self.last_log = time.monotonic()
        self.every = every_seconds
        self.bar = None
        if tty if tty is not None else sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit="msg", unit_scale=True, leave=True)

    def __call__(self, n: int) -> None:
        self.done += n
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
        self.stop_event.wait(seconds)

    # -- main loops

    def run(self, *, once: bool = False) -> int:
        """Run until stopped (or one full sync with ``once``). Returns the exit status."""
        backoff = Backoff(cap=float(self.settings.ingest.reconnect_max_seconds))
        auth_failures = 0
        outbox.recover_after_crash(self.store, self.clock())
        if not once:
            self._start_scheduler()
        try:
            while not self.stop_event.is_set():
                try:
                    self.session.connect()
                    self.folders = self._folders()
                    self.sync_all(initial=True)
                    backoff.reset()
                    auth_failures = 0
                    self.handle_commands()
                    self.morning_tasks()
                    if once:
                        return 0
                    self.watch()
                except AuthError as exc:
                    auth_failures += 1
                    self.last_error = str(exc)
                    log.error("%s", exc)
                    if once:
                        return 2
                    # a wrong password will not fix itself quickly: wait the full cap
                    self._sleep(backoff.cap if auth_failures > 1 else backoff.next_delay())
                except MailServerError as exc:
                    self.last_error = str(exc)
                    if once:
                        log.error("%s", exc)
                        return 1
                    delay = backoff.next_delay()
                    log.warning("%s; reconnecting in %.0f s", exc, delay)
                    self._sleep(delay)
                finally:
                    self.store.commit()
                    self.session.close()
            return 0
        except ConfigError:
            self.store.commit()
            raise
        finally:
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=False)

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
                morning.run_digest(self.store, self.settings, now, self.drafter, day)
            except MailServerError as exc:
                log.error("could not build the digest for %s: %s", day, exc)
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
        """Connect, send what the outbox holds, disconnect (for the CLI)."""
        self.session.connect()
        try:
            self.folders = self._folders()
            self.flush_outbox()
        finally:
            self.session.close()

    def flush_outbox(self) -> None:
        outbox.process(self.store, self._send, self._find, self.clock())
        self._file_sent_notes()

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
            if initial:
                pending = fs.pending_count()
                if pending > 0:
                    progress = Progress(folder, pending)
            try:
                stats = fs.sync(progress=progress, should_stop=self.stop_event.is_set)
            finally:
                if progress is not None:
                    progress.close()
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
