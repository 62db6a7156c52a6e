"""The outbox: every email mailbot sends, as a state machine persisted before any network I/O.

States::

    queued --(SMTP up to DATA; commit)--> sending --> sent
       ^                               |  \\--> failed    (5xx, or too many 4xx)
       |--- 4xx / no connection -------|   \\-> unknown   (connection lost during DATA)

An item found in ``sending`` at start-up was interrupted mid-send: it becomes
``unknown``. ``unknown`` is resolved by looking for the item's Message-ID in the
mailbox where a delivered copy would be (the owner's INBOX for mail to the owner),
never by a blind resend. Only mail addressed to the owner alone is re-queued
when it is not found after ``unknown_wait``: a duplicate digest is a nuisance,
a lost one is worse. Anything else stays ``unknown`` and is reported.

The Message-ID is assigned before the item is queued and the exact bytes are
stored with their SHA-256, so a retry sends the very same message.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any

from .smtp import Outcome, SendResult
from .store import Store

log = logging.getLogger(__name__)

QUEUED, SENDING, SENT, FAILED, UNKNOWN = "queued", "sending", "sent", "failed", "unknown"
MAX_ATTEMPTS = 8

Sender = Callable[[bytes, str, Sequence[str], Callable[[], None]], SendResult]
Finder = Callable[[str, str], bool]  # (folder role, message id) -> found?


def message_bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=SMTP_POLICY)


def retry_delay(attempts: int) -> timedelta:
    """10 s, 20 s, 40 s ... after each temporary failure, capped at an hour."""
    return timedelta(seconds=min(3600, 10 * 2 ** max(attempts - 1, 0)))


def retry_now(store: Store, now: datetime) -> int:
    """Make every queued item due at once (``mailbot outbox --retry-now``)."""
    n = 0
    for item in store.records("outbox"):
        if item["state"] == QUEUED and item["not_before"] > now.isoformat():
            item["not_before"] = now.isoformat()
            store.put_record("outbox", item)
            n += 1
    store.commit()
    return n


def enqueue(store: Store, msg: EmailMessage, *, kind: str, mail_from: str,
            rcpts: Sequence[str], now: datetime, owner_only: bool, ref: str = "") -> str:
    """Record ``msg`` as queued (not yet committed: the caller commits). Returns its Message-ID."""
    mid = str(msg["Message-ID"]).strip().strip("<>")
    if store.record("outbox", mid) is not None:
        raise ValueError(f"outbox already holds {mid}")
    raw = message_bytes(msg)
    store.put_record("outbox", {
        "message_id": mid,
        "kind": kind,
        "ref": ref,
        "mail_from": mail_from,
        "rcpts": list(rcpts),
        "owner_only": owner_only,
        "raw": base64.b64encode(raw).decode("ascii"),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "state": QUEUED,
        "attempts": 0,
        "created": now.isoformat(),
        "updated": now.isoformat(),
        "not_before": now.isoformat(),
        "detail": "",
    })
    return mid


def recover_after_crash(store: Store, now: datetime) -> int:
    """Items left in ``sending`` by a crash become ``unknown``. Returns how many."""
    n = 0
    for item in store.records("outbox"):
        if item["state"] == SENDING:
            item.update(state=UNKNOWN, updated=now.isoformat(),
                        detail="interrupted during sending")
            store.put_record("outbox", item)
            n += 1
    if n:
        store.commit()
        log.warning("%d outbox item(s) were interrupted mid-send; checking the mailbox", n)
    return n


def _set(store: Store, item: dict[str, Any], now: datetime, **fields: Any) -> None:
    item.update(fields, updated=now.isoformat())
    store.put_record("outbox", item)
    store.commit()


def process(store: Store, send: Sender, find: Finder, now: datetime, *,
            unknown_wait: timedelta = timedelta(minutes=5),
            only: Callable[[dict[str, Any]], bool] = lambda _item: True) -> dict[str, int]:
    """Send what is due and resolve what is unknown (of the items ``only`` accepts).

    Returns counts by resulting state.
    """
    counts: dict[str, int] = {}
    items = sorted((i for i in store.records("outbox") if only(i)), key=lambda i: i["created"])
    for item in items:
        state = item["state"]
        if state == UNKNOWN:
            where = "inbox" if item.get("owner_only") else "sent"
            if find(where, item["message_id"]):
                _set(store, item, now, state=SENT, detail="found in the mailbox")
                log.info("outbox %s: delivery confirmed by the mailbox", item["kind"])
            elif (item.get("owner_only") and
                  now - datetime.fromisoformat(item["updated"]) >= unknown_wait):
                _set(store, item, now, state=QUEUED, not_before=now.isoformat(),
                     detail="not found after an ambiguous send; sending again to the owner")
            else:
                counts[UNKNOWN] = counts.get(UNKNOWN, 0) + 1
                continue
        if item["state"] != QUEUED or datetime.fromisoformat(item["not_before"]) > now:
            continue
        raw = base64.b64decode(item["raw"])
        if hashlib.sha256(raw).hexdigest() != item["sha256"]:
            _set(store, item, now, state=FAILED, detail="stored bytes do not match their hash")
            continue
        # The item is persisted (queued) before any network I/O. "sending" is committed
        # just before DATA: a crash before that leaves it queued (nothing can have been
        # delivered), a crash after it leaves "sending", which becomes unknown.
        item["attempts"] = int(item["attempts"]) + 1

        def mark_sending(item: dict[str, Any] = item) -> None:
            _set(store, item, now, state=SENDING)

        result = send(raw, item["mail_from"], item["rcpts"], mark_sending)
        if result.outcome is Outcome.SENT:
            _set(store, item, now, state=SENT, detail=result.detail[:200])
            log.info("sent %s %s", item["kind"], item["message_id"])
        elif result.outcome is Outcome.UNKNOWN:
            _set(store, item, now, state=UNKNOWN, detail=result.detail[:200])
            log.warning("outcome of sending %s is unknown: %s", item["kind"], result.detail)
        elif result.outcome is Outcome.TEMPORARY and item["attempts"] < MAX_ATTEMPTS:
            wait = retry_delay(int(item["attempts"]))
            _set(store, item, now, state=QUEUED, not_before=(now + wait).isoformat(),
                 detail=result.detail[:200])
            log.warning("sending %s failed for now (%s); retrying in %s", item["kind"],
                        result.detail, wait)
        else:
            _set(store, item, now, state=FAILED, detail=result.detail[:200])
            log.error("sending %s failed: %s", item["kind"], result.detail)
        counts[item["state"]] = counts.get(item["state"], 0) + 1
    return counts
