"""Ingestion: turn messages (from IMAP or a local mailbox file) into touchpoints.

Two layers:

* :func:`touchpoints_from` is pure: a parsed message, its classification and
  where it came from in, touchpoints out.
* :class:`FolderSync` drives one IMAP folder against the store: catch-up above
  the stored last UID (ascending), then the rest of the backfill (descending,
  newest first, within ``history_days``), in batches. Each batch is one header
  FETCH, one partial text FETCH for the customer mail in it, and one store
  commit that holds the touchpoints and the new cursor together.

Why nothing is lost or duplicated: the cursor only moves in the same atomic
commit as the touchpoints of the messages it covers, and every touchpoint has
a unique key (Message-ID + direction + contact) checked against an in-memory
index, so re-reading a batch after a crash, a reconnect or a UIDVALIDITY change
adds nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from .classify import Identity, classify, detect_negative, detect_opt_out
from .commands import command_record
from .imap import FetchedHeaders, ImapSession
from .models import (
    Category,
    Classification,
    Contact,
    ContactStatus,
    Direction,
    FolderState,
    Message,
    Touchpoint,
)
from .parse import HEADER_FIELDS, decode_part, html_to_text, parse_headers, snippet
from .store import Store

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass
class SyncStats:
    """Counts for one sync pass, for logs and tests."""

    seen: int = 0
    customer_messages: int = 0
    touchpoints_added: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    bodies_fetched: int = 0

    def add(self, other: SyncStats) -> None:
        self.seen += other.seen
        self.customer_messages += other.customer_messages
        self.touchpoints_added += other.touchpoints_added
        self.bodies_fetched += other.bodies_fetched
        for k, v in other.skipped.items():
            self.skipped[k] = self.skipped.get(k, 0) + v

    def summary(self) -> str:
        skipped = ", ".join(f"{v} {k}" for k, v in sorted(self.skipped.items())) or "none"
        return (
            f"{self.seen} messages, {self.customer_messages} customer, "
            f"{self.touchpoints_added} new touchpoints; skipped: {skipped}"
        )


# --------------------------------------------------------------------------- pure


def touchpoints_from(
    msg: Message,
    verdict: Classification,
    *,
    received: datetime | None,
    folder: str = "",
    uidvalidity: int = 0,
    uid: int = 0,
) -> list[Touchpoint]:
    """The touchpoints one customer message makes: one per customer it concerns."""
    if verdict.category is not Category.CUSTOMER:
        return []
    when = msg.date or received or datetime(1970, 1, 1, tzinfo=UTC)
    text = msg.text
    inbound = verdict.direction is Direction.INBOUND
    snip = snippet(text) if text else ""
    opt_out = inbound and bool(text) and (verdict.opt_out or detect_opt_out(text))
    negative = inbound and bool(text) and detect_negative(text)
    return [
        Touchpoint(
            message_id=msg.message_id,
            contact=c.address,
            direction=verdict.direction,
            date=when.astimezone(UTC),
            subject=msg.subject[:200],
            snippet=snip,
            thread_key=msg.thread_key,
            folder=folder,
            uidvalidity=uidvalidity,
            uid=uid,
            reason=verdict.reason,
            opt_out=opt_out,
            negative=negative,
        )
        for c in verdict.contacts
    ]


def apply_to_store(
    store: Store,
    msg: Message,
    verdict: Classification,
    tps: list[Touchpoint],
    now: datetime,
) -> int:
    """Record one classified message: touchpoints, contacts (names, opt-outs), decisions."""
    if verdict.category is not Category.CUSTOMER:
        if msg.sender is not None and verdict.category is not Category.COMMAND:
            store.note_decision(msg.sender.address, verdict.category.value, verdict.reason, now)
        return 0
    names = {c.address: c.name for c in verdict.contacts}
    for tp in tps:
        contact = store.ensure_contact(tp.contact, names.get(tp.contact, ""))
        if tp.opt_out and contact.status is ContactStatus.CUSTOMER:
            store.upsert_contact(
                replace(
                    contact,
                    status=ContactStatus.OPTED_OUT,
                    status_reason=f"asked to stop on {tp.date:%Y-%m-%d} ('{tp.subject[:60]}')",
                )
            )
            log.info("contact %s asked not to be contacted; marked opted out", tp.contact)
    return store.add_touchpoints(tps)


def ingest_parsed(
    store: Store, msg: Message, identity: Identity, now: datetime, *, folder: str = ""
) -> tuple[Classification, int]:
    """Classify and store one fully parsed message (local imports); returns the verdict."""
    verdict = classify(msg, identity)
    tps = touchpoints_from(msg, verdict, received=None, folder=folder)
    return verdict, apply_to_store(store, msg, verdict, tps, now)


def contact_import_rows(
    rows: Iterable[dict[str, str]], existing: dict[str, Contact]
) -> tuple[list[Contact], list[str]]:
    """Contacts from CSV rows (email, name, value, tags); returns (contacts, problems)."""
    out: list[Contact] = []
    problems: list[str] = []
    for n, row in enumerate(rows, start=2):
        norm = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        addr = norm.get("email", "").lower()
        if "@" not in addr or " " in addr or addr.startswith("@") or addr.endswith("@"):
            problems.append(f"line {n}: {addr or '(empty)'!s} is not an email address")
            continue
        tags = tuple(t.strip() for t in norm.get("tags", "").replace(";", ",").split(",")
                     if t.strip())
        old = existing.get(addr)
        base = old or Contact(address=addr)
        status = base.status
        if status is ContactStatus.NOT_CUSTOMER:
            status = ContactStatus.CUSTOMER  # an explicit import overrides the heuristics
        out.append(
            replace(
                base,
                name=norm.get("name") or base.name,
                value=norm.get("value", base.value),
                tags=tags or base.tags,
                imported=True,
                status=status,
            )
        )
    return out, problems


# --------------------------------------------------------------------------- IMAP


@dataclass(frozen=True)
class SyncPlan:
    """What one sync of a folder will read: new UIDs (ascending) and the backfill's
    (descending), with the folder's cursor as it was when they were listed."""

    state: FolderState
    new: tuple[int, ...]
    backfill: tuple[int, ...]

    @property
    def total(self) -> int:
        return len(self.new) + len(self.backfill)


class FolderSync:
    """Keeps one IMAP folder's touchpoints in step with the server."""

    def __init__(
        self,
        session: ImapSession,
        store: Store,
        folder: str,
        identity: Identity,
        *,
        history_days: int,
        batch_size: int = 500,
        body_bytes: int = 8192,
        commit_seconds: float = 2.0,
        collect_commands: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.session = session
        self.store = store
        self.folder = folder
        self.identity = identity
        self.history_days = history_days
        self.batch_size = batch_size
        self.body_bytes = body_bytes
        self.commit_seconds = commit_seconds
        self.collect_commands = collect_commands
        self.clock = clock
        self._last_commit = 0.0

    def plan(self) -> SyncPlan:
        """SELECT the folder and list what the next :meth:`sync` will read.

        A first sync (or a changed UIDVALIDITY) starts the folder's cursor here and
        commits it. Made once per sync; the daemon also sizes its progress bar by it.
        """
        status = self.session.select(self.folder)
        state = self.store.folder_state(self.folder)
        top = max(status.uidnext - 1, 0)
        if state is None or state.uidvalidity != status.uidvalidity:
            if state is not None:
                log.warning(
                    "%s: UIDVALIDITY changed (%d -> %d); resyncing by Message-ID, "
                    "nothing already stored will be duplicated",
                    self.folder, state.uidvalidity, status.uidvalidity,
                )
            if status.uidnext == 0:  # server did not say; find the top ourselves
                top = max(self.session.uids_above(0), default=0)
            state = FolderState(
                folder=self.folder,
                uidvalidity=status.uidvalidity,
                last_uid=top,
                backfill_next=top + 1,
            )
            self.store.set_folder_state(state)
            self.store.commit()
        new = self.session.uids_above(state.last_uid)
        backfill: list[int] = []
        if not state.backfill_done:
            since = (self.clock() - timedelta(days=self.history_days)).date()
            backfill = sorted((u for u in self.session.uids_since(since)
                               if u < state.backfill_next), reverse=True)
        return SyncPlan(state, tuple(new), tuple(backfill))

    def sync(self, progress: Progress | None = None, should_stop: Callable[[], bool] = bool,
             plan: SyncPlan | None = None) -> SyncStats:
        """Catch up with new mail, then continue the backfill. Safe to interrupt anywhere.

        ``plan`` is a fresh :meth:`plan` result (made here when not given).
        """
        stats = SyncStats()
        plan = plan or self.plan()
        state = plan.state

        # 1. new mail since the last pass, oldest first
        new = list(plan.new)
        if new:
            log.info("%s: %d new message(s) above UID %d", self.folder, len(new), state.last_uid)
        for batch in _chunks(new, self.batch_size):
            if should_stop():
                break
            stats.add(self._batch(batch, state.uidvalidity, live=True))
            state = replace(state, last_uid=max(batch))
            self.store.set_folder_state(state)
            self._maybe_commit(force=True)
            if progress:
                progress(len(batch))

        # 2. the rest of the backfill, newest first
        if not state.backfill_done and not should_stop():
            todo = list(plan.backfill)
            if todo:
                log.info("%s: backfill of %d message(s) since %s", self.folder, len(todo),
                         (self.clock() - timedelta(days=self.history_days)).date())
            for batch in _chunks(todo, self.batch_size):
                if should_stop():
                    break
                stats.add(self._batch(batch, state.uidvalidity))
                state = replace(state, backfill_next=min(batch))
                self.store.set_folder_state(state)
                self._maybe_commit()
                if progress:
                    progress(len(batch))
            else:
                state = replace(state, backfill_done=True)
        # last_sync alone is not worth rewriting the whole database on every idle
        # wake-up (35% of a no-op sync): it is refreshed with other changes, or every
        # ten minutes.
        now = self.clock()
        stale = state.last_sync is None or now - state.last_sync >= timedelta(minutes=10)
        if self.store.pending or stale:
            state = replace(state, last_sync=now)
            self.store.set_folder_state(state)
        self._maybe_commit(force=True)
        return stats

    def _maybe_commit(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_commit >= self.commit_seconds:
            self.store.commit()
            self._last_commit = now

    def _record_command(self, f: FetchedHeaders, msg: Message, uidvalidity: int,
                        now: datetime) -> None:
        """Keep an owner reply to a mailbot email for the command handler (same commit)."""
        if self.store.record("commands", msg.message_id) is not None:
            return
        self.store.put_record("commands", command_record(
            msg.message_id, self.folder, f.uid, uidvalidity, msg.in_reply_to, msg.references,
            now, msg.subject))

    def _batch(self, uids: list[int], uidvalidity: int, live: bool = False) -> SyncStats:
        """One batch. ``live``: new mail (catch-up), where owner replies become commands;
        replies met during a backfill are history, never acted on."""
        stats = SyncStats()
        fetched = self.session.fetch_headers(uids, HEADER_FIELDS)
        now = self.clock()
        todo: list[tuple[FetchedHeaders, Message, Classification]] = []
        for f in fetched:
            stats.seen += 1
            msg = parse_headers(f.header)
            if msg.date is None and f.internaldate is not None:
                msg = replace(msg, date=f.internaldate)
            verdict = classify(msg, self.identity)
            if verdict.category is Category.COMMAND and self.collect_commands and live:
                self._record_command(f, msg, uidvalidity, now)
            if verdict.category is not Category.CUSTOMER:
                stats.skipped[verdict.category.value] = (
                    stats.skipped.get(verdict.category.value, 0) + 1
                )
                apply_to_store(self.store, msg, verdict, [], now)
                continue
            stats.customer_messages += 1
            keys = [
                f"{msg.message_id}|{verdict.direction.value}|{c.address}" for c in verdict.contacts
            ]
            if all(self.store.has_touchpoint(k) for k in keys):
                continue  # already stored (a resync, a re-read batch, a copy in two folders)
            todo.append((f, msg, verdict))
        # customer mail only: where its text is, then the first body_bytes of that part
        structure = self.session.fetch_structure([f.uid for f, _m, _v in todo])
        wanted = {uid: part for uid, part in structure.items() if part is not None}
        bodies = self.session.fetch_text(wanted, self.body_bytes) if wanted else {}
        stats.bodies_fetched = len(bodies)
        for f, msg, verdict in todo:
            text = ""
            part = wanted.get(f.uid)
            if part is not None and f.uid in bodies:
                text = decode_part(bodies[f.uid], charset=part.charset,
                                   transfer_encoding=part.encoding)
                if part.subtype == "html":
                    text = html_to_text(text)
            full = replace(msg, text=text)
            # the category comes from the headers; touchpoints_from reads the text for
            # opt-out and tone, so there is no second classify here
            tps = touchpoints_from(
                full, verdict, received=f.internaldate, folder=self.folder,
                uidvalidity=uidvalidity, uid=f.uid,
            )
            stats.touchpoints_added += apply_to_store(self.store, full, verdict, tps, now)
        return stats


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
