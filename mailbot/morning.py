"""The morning digest job: rank, draft, build, and queue, in one atomic commit.

``compose`` is pure apart from the drafter (which may call an LLM endpoint);
``queue_digest`` writes the digest, its drafts and the suggestions to the store
together with the outbox items, so a crash leaves either a queued digest or no
trace of one, never half. The outbox sends it afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta, tzinfo
from email.message import EmailMessage
from typing import Any

from . import outbox
from .config import Settings
from .digest import DraftEmail, Figures, build_digest, new_token
from .drafting import Drafter, LLMEngine, TemplateEngine, Voice, bundled_prompts_dir
from .models import Contact, ContactStatus, Direction, Pick, Reason, Suggestion, Touchpoint
from .rank import RankSettings, rank
from .scheduling import DigestSchedule
from .store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Composed:
    digest: EmailMessage
    drafts: list[DraftEmail]
    picks: list[Pick]
    day: date


def rank_settings(settings: Settings) -> RankSettings:
    """The ranking thresholds from config ([rank], plus [digest] size)."""
    ours = {f.name for f in fields(RankSettings)}
    values: dict[str, Any] = {
        f.name: getattr(settings.rank, f.name) for f in fields(settings.rank) if f.name in ours
    }
    values["size"] = settings.digest.size
    return RankSettings(**values)


def schedule_of(settings: Settings) -> DigestSchedule:
    d = settings.digest
    return DigestSchedule(hour=d.hour, minute=d.minute, days=d.days, tz=settings.owner.tz,
                          grace=timedelta(minutes=d.grace_minutes))


def voice_of(settings: Settings) -> Voice:
    o = settings.owner
    return Voice(owner_name=o.name, signature=o.signature, business=o.business, tone=o.tone)


def make_drafter(settings: Settings) -> Drafter:
    d = settings.drafting
    prompts = d.prompts_dir or bundled_prompts_dir()
    template = TemplateEngine(prompts)
    template.check()
    llm = None
    if d.engine == "llm":
        llm = LLMEngine(d.llm_base_url, d.llm_model, prompts_dir=prompts,
                        api_key_env=d.llm_api_key_env, timeout=d.llm_timeout_seconds)
    return Drafter(template, llm)


def suggestions_from(records: Iterable[Mapping[str, Any]],
                     touchpoints_by_contact: Mapping[str, Sequence[Touchpoint]]
                     ) -> list[Suggestion]:
    """Past suggestions, each marked acted when the owner wrote to the person afterwards."""
    out = []
    for r in records:
        when = datetime.fromisoformat(r["date"])
        acted = bool(r.get("acted")) or any(
            t.direction is Direction.OUTBOUND and t.date >= when
            for t in touchpoints_by_contact.get(r["contact"], ())
        )
        out.append(Suggestion(contact=r["contact"], date=when, reason=Reason(r["reason"]),
                              acted=acted))
    return out


def figures_of(touchpoints_by_contact: Mapping[str, Sequence[Touchpoint]],
               contacts: Mapping[str, Contact], now: datetime, tz: tzinfo,
               lapsed_now: int) -> Figures:
    customers = sum(
        1 for a in touchpoints_by_contact
        if (c := contacts.get(a)) is None or c.status is ContactStatus.CUSTOMER
    )
    waiting = sum(1 for tps in touchpoints_by_contact.values() if any(t.needs_reply for t in tps))
    week_ago = now - timedelta(days=7)
    notes = sum(1 for tps in touchpoints_by_contact.values() for t in tps
                if t.direction is Direction.OUTBOUND and t.date >= week_ago)
    return Figures(customers=customers, replies_waiting=waiting,
                   gone_quiet_this_month=lapsed_now, notes_sent_7d=notes)


def compose(store: Store, settings: Settings, now: datetime, drafter: Drafter, *,
            tokens: Sequence[str] | None = None) -> Composed:
    """Rank this morning's list and build the digest and drafts (nothing is written)."""
    tz = settings.owner.tz
    by_contact = {c: store.touchpoints_for(c) for c in {t.contact for t in store.touchpoints()}}
    all_tps = [t for tps in by_contact.values() for t in tps]
    contacts = store.contacts()
    picks = rank(all_tps, contacts, suggestions_from(store.records("suggestions"), by_contact),
                 now, tz, rank_settings(settings))
    voice = voice_of(settings)
    drafts = []
    for p in picks:
        text, engine = drafter.draft(p, voice, now=now)
        log.info("draft for %s (%s) from the %s engine", p.contact, p.reason.value, engine)
        drafts.append(text)
    figures = figures_of(by_contact, contacts, now, tz,
                         sum(1 for p in picks if p.reason is Reason.LAPSED))
    toks = list(tokens) if tokens is not None else [new_token() for _ in range(len(picks) + 1)]
    owner = settings.owner
    domain = owner.address.rsplit("@", 1)[1]
    digest, draft_emails = build_digest(
        picks, drafts, figures, owner_name=owner.name, owner_address=owner.address,
        to_address=settings.digest.to, now=now, tz=tz, digest_token=toks[0],
        draft_tokens=toks[1:], domain=domain,
    )
    return Composed(digest, draft_emails, picks, now.astimezone(tz).date())


def queue_digest(store: Store, settings: Settings, composed: Composed, now: datetime) -> str:
    """Record the digest, drafts and suggestions and queue the emails, in one commit."""
    owner = settings.owner
    to = settings.digest.to
    day = composed.day.isoformat()
    mid = outbox.enqueue(store, composed.digest, kind="digest", mail_from=owner.address,
                         rcpts=[to], now=now, owner_only=True, ref=day)
    by_contact = {p.contact: p for p in composed.picks}
    for d in composed.drafts:
        outbox.enqueue(store, d.message, kind="draft", mail_from=owner.address, rcpts=[to],
                       now=now, owner_only=True, ref=d.token)
        pick = by_contact[d.contact]
        store.put_record("drafts", {
            "token": d.token, "contact": d.contact, "contact_name": pick.name,
            "subject": str(d.message["Subject"]), "reason": d.reason.value, "text": d.text,
            "message_id": d.message_id, "digest_date": day, "state": "pending",
            "note_subject": d.note_subject, "private_context": d.private_context,
            "reply_to_message_id": pick.reply_to_message_id,
            "reply_to_references": list(pick.reply_to_references),
            "created": now.isoformat(),
        })
        store.put_record("suggestions", {
            "id": f"{day}|{d.contact}", "contact": d.contact, "date": now.isoformat(),
            "reason": d.reason.value, "acted": False,
        })
    store.put_record("digests", {"date": day, "message_id": mid, "picks": len(composed.picks),
                                 "created": now.isoformat(), "state": "queued"})
    store.commit()
    log.info("digest for %s queued with %d pick(s)", day, len(composed.picks))
    return mid


def record_skipped(store: Store, day: date, now: datetime, why: str) -> None:
    store.put_record("digests", {"date": day.isoformat(), "message_id": "", "picks": 0,
                                 "created": now.isoformat(), "state": why})
    store.commit()


def sent_dates(store: Store) -> set[date]:
    return {date.fromisoformat(r["date"]) for r in store.records("digests")}


def run_digest(store: Store, settings: Settings, now: datetime, drafter: Drafter,
               day: date) -> str | None:
    """Build and queue the digest for ``day`` unless one exists. Returns its Message-ID."""
    if store.record("digests", day.isoformat()) is not None:
        log.info("digest for %s already done; not sending another", day)
        return None
    composed = replace(compose(store, settings, now, drafter), day=day)
    if not composed.picks and not settings.digest.send_when_empty:
        record_skipped(store, day, now, "nothing to suggest")
        log.info("nothing to suggest for %s; no digest (digest.send_when_empty = false)", day)
        return None
    return queue_digest(store, settings, composed, now)

