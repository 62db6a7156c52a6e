"""Reply-to-send: act on the owner's replies to drafts, with every check of DESIGN 3.

Ingestion records each owner reply to a mailbot email (category ``command``) in
the ``commands`` table in the same commit as the sync cursor, so none is lost.
:class:`CommandHandler` then works through the pending ones:

1. find the draft (or confirmation) by the unguessable token its Message-ID carries;
   an unknown or altered token is refused;
2. authenticate: the From is an owner address (classification) **and** the same
   Message-ID is in the owner's Sent folder (waited for up to ``sent_wait``);
   a spoofed From never sends;
3. read the owner's text with :mod:`mailbot.replies` (marker, quotes, quote header),
   run the leak check, and parse the command;
4. when anything is doubtful, ask the owner by email and wait for a plain "yes";
5. otherwise queue the note in the outbox, due after the undo window.

Every refusal is told to the owner. A draft is acted on at most once.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from . import outbox
from .config import Settings
from .digest import new_token
from .imap import ImapSession
from .models import Contact, ContactStatus
from .notes import build_confirm, build_note, build_notice
from .replies import (
    CommandKind,
    DraftRef,
    Extraction,
    extract,
    leak_problems,
    parse_command,
    reply_text,
    tokens_referenced,
)
from .store import Store

log = logging.getLogger(__name__)

PENDING, DONE, REFUSED = "pending", "done", "refused"
MAX_REPLY_BYTES = 2 * 1024 * 1024


def command_record(message_id: str, folder: str, uid: int, uidvalidity: int,
                   in_reply_to: str, references: tuple[str, ...], received: datetime,
                   subject: str) -> dict[str, Any]:
    return {
        "message_id": message_id, "folder": folder, "uid": uid, "uidvalidity": uidvalidity,
        "in_reply_to": in_reply_to, "references": list(references),
        "received": received.isoformat(), "subject": subject[:200],
        "state": PENDING, "outcome": "",
    }


class CommandHandler:
    def __init__(self, settings: Settings, store: Store, session: ImapSession,
                 sent_folder: str, *, sent_wait: timedelta = timedelta(minutes=10)) -> None:
        self.settings = settings
        self.store = store
        self.session = session
        self.sent_folder = sent_folder
        self.sent_wait = sent_wait
        owner = settings.owner
        self.domain = owner.address.rsplit("@", 1)[1]

    # -- entry point

    def process_pending(self, now: datetime) -> int:
        """Handle every pending command; returns how many were settled."""
        settled = 0
        for rec in sorted(self.store.records("commands"), key=lambda r: r["received"]):
            if rec["state"] != PENDING:
                continue
            try:
                outcome = self._handle(rec, now)
            except ValueError as exc:  # a malformed record or reply: refuse, never crash
                outcome = self._refuse(rec, now, f"the reply could not be read ({exc})")
            if outcome is None:
                continue  # waiting for the Sent copy
            rec.update(state=DONE if not outcome.startswith("refused") else REFUSED,
                       outcome=outcome, settled=now.isoformat())
            self.store.put_record("commands", rec)
            self.store.commit()
            log.info("owner reply %s: %s", rec["message_id"], outcome)
            settled += 1
        return settled

    # -- steps

    def _handle(self, rec: dict[str, Any], now: datetime) -> str | None:
        refs = tokens_referenced(rec["in_reply_to"], rec["references"])
        target = None
        for kind, token in refs:
            if kind in ("draft", "confirm"):
                draft = self.store.record("drafts", token) if kind == "draft" else \
                    self._draft_of_confirm(token)
                if draft is not None:
                    target = (kind, token, draft)
                    break
        if target is None:
            return self._refuse(rec, now, "it answers no draft mailbot knows (the reply's "
                                "reference is unknown or was altered)")
        kind, token, draft = target
        # authentication: the same Message-ID must be in the owner's own Sent folder
        if not self._in_sent(rec["message_id"]):
            if now - datetime.fromisoformat(rec["received"]) < self.sent_wait:
                return None
            return self._refuse(rec, now, "it is not in your Sent folder, so I cannot tell "
                                "that your account sent it (a forged sender?)", draft=draft)
        raw = self._fetch(rec)
        if raw is None:
            return self._refuse(rec, now, "the reply is gone from the inbox or too large "
                                "to read safely", draft=draft)
        body, _html = reply_text(raw)
        owner = self.settings.owner
        ref = DraftRef(
            token=draft["token"], contact=draft["contact"],
            contact_name=draft.get("contact_name", ""),
            text=draft["confirm_text"] if kind == "confirm" else draft["text"],
            private_context=draft.get("private_context", ""),
            subject=draft.get("confirm_subject" if kind == "confirm" else "subject", ""),
            note_subject=draft.get("note_subject", ""),
        )
        ex = extract(body, ref, owner_addresses=owner.addresses, owner_name=owner.name)
        cmd = parse_command(ex.text)
        if kind == "confirm":
            return self._on_confirm(rec, draft, cmd.kind, now)
        return self._on_draft(rec, draft, ex, cmd.kind, cmd.days, now)

    def _draft_of_confirm(self, confirm_token: str) -> dict[str, Any] | None:
        for d in self.store.records("drafts"):
            if d.get("confirm_token") == confirm_token:
                return d
        return None

    def _in_sent(self, message_id: str) -> bool:
        self.session.select(self.sent_folder)
        return bool(self.session.search_message_id(message_id))

    def _fetch(self, rec: dict[str, Any]) -> bytes | None:
        status = self.session.select(rec["folder"])
        uid = int(rec["uid"])
        if status.uidvalidity != int(rec["uidvalidity"]):
            found = self.session.search_message_id(rec["message_id"])
            if not found:
                return None
            uid = found[0]
        sizes = self.session.fetch_sizes([uid])
        if sizes.get(uid, 0) > MAX_REPLY_BYTES:
            return None
        return self.session.fetch_full([uid]).get(uid)

    # -- decisions

    def _on_draft(self, rec: dict[str, Any], draft: dict[str, Any], ex: Extraction,
                  kind: CommandKind, days: int, now: datetime) -> str:
        state = draft.get("state", "pending")
        contact = self.store.contact(draft["contact"]) or Contact(address=draft["contact"])
        if kind is CommandKind.UNDO:
            return self._undo(rec, draft, now)
        if state not in ("pending", "confirm"):
            return self._refuse(rec, now, f"this draft was already handled ({state}); "
                                "a draft is sent at most once", draft=draft)
        if kind is CommandKind.SKIP:
            return self._set_draft(draft, "skipped", now)
        if kind is CommandKind.DONE:
            self._set_draft(draft, "done", now)
            self._mark_acted(draft)
            return "done: reached another way"
        if kind is CommandKind.SNOOZE:
            self.store.upsert_contact(replace(contact, snoozed_until=now + timedelta(days=days)))
            return self._set_draft(draft, f"snoozed {days} days", now)
        if kind is CommandKind.NEVER:
            self.store.upsert_contact(replace(contact, status=ContactStatus.OPTED_OUT,
                                              status_reason="owner said never"))
            return self._set_draft(draft, "never", now)
        if kind is CommandKind.NOT_CUSTOMER:
            self.store.upsert_contact(replace(contact, status=ContactStatus.NOT_CUSTOMER,
                                              status_reason="owner said not a customer"))
            return self._set_draft(draft, "not a customer", now)
        if kind is CommandKind.UNKNOWN:
            self._notice(f"what should I do with your reply about {self._label(draft)}?",
                         f"You replied \"{ex.text.strip()[:80]}\" to the draft for "
                         f"{self._label(draft)}. I did not send anything.\n\nReply to the "
                         "draft again with your note, or with yes, skip, snooze 2w, never, "
                         "not a customer or done.", rec, now)
            return "asked: unknown short reply"
        if kind is CommandKind.SEND_ANYWAY and not ex.text.strip():
            kind = CommandKind.SEND_DRAFT
        text = draft["text"] if kind in (CommandKind.SEND_DRAFT, CommandKind.YES,
                                         CommandKind.SEND_ANYWAY) else ex.text
        owner = self.settings.owner
        ref = DraftRef(token=draft["token"], contact=draft["contact"],
                       contact_name=draft.get("contact_name", ""), text=draft["text"],
                       private_context=draft.get("private_context", ""),
                       subject=draft.get("subject", ""), note_subject=draft.get("note_subject", ""))
        doubts = list(ex.why) if ex.doubtful else []
        doubts += leak_problems(text, ref, owner_addresses=owner.addresses)
        subject = ex.subject_override or draft.get("note_subject") or "Hello"
        if contact.status is ContactStatus.OPTED_OUT and kind is not CommandKind.SEND_ANYWAY:
            return self._ask(rec, draft, text, subject, now,
                             [f"{self._label(draft)} asked not to be contacted "
                              f"({contact.status_reason or 'opted out'})"], need="send anyway")
        if contact.status in (ContactStatus.BOUNCED, ContactStatus.NOT_CUSTOMER):
            return self._refuse(rec, now, f"{self._label(draft)} is marked "
                                f"{contact.status.value}", draft=draft)
        if doubts:
            return self._ask(rec, draft, text, subject, now, doubts)
        return self._queue_note(draft, text, subject, now)

    def _on_confirm(self, rec: dict[str, Any], draft: dict[str, Any], kind: CommandKind,
                    now: datetime) -> str:
        if draft.get("state") != "confirm":
            return self._refuse(rec, now, "that question was already answered", draft=draft)
        need = draft.get("confirm_need", "yes")
        ok = (kind is CommandKind.SEND_ANYWAY if need == "send anyway"
              else kind in (CommandKind.SEND_DRAFT, CommandKind.YES, CommandKind.SEND_ANYWAY))
        if kind is CommandKind.SKIP:
            return self._set_draft(draft, "skipped", now)
        if not ok:
            self._notice(f"nothing sent to {self._label(draft)}",
                         f"Your answer was not a plain \"{need}\", so nothing was sent.", rec, now)
            return "refused: confirmation not given"
        return self._queue_note(draft, draft["confirm_text"], draft["confirm_note_subject"], now)

    def _queue_note(self, draft: dict[str, Any], text: str, subject: str, now: datetime) -> str:
        owner = self.settings.owner
        token = new_token()
        msg = build_note(
            text=text, subject=subject, owner_name=owner.name, owner_address=owner.address,
            contact=draft["contact"], contact_name=draft.get("contact_name", ""),
            in_reply_to=draft.get("reply_to_message_id", ""),
            references=list(draft.get("reply_to_references", [])),
            token=token, now=now, tz=owner.tz, domain=self.domain,
        )
        mid = outbox.enqueue(self.store, msg, kind="note", mail_from=owner.address,
                             rcpts=[draft["contact"]], now=now, owner_only=False,
                             ref=draft["token"])
        delay = timedelta(seconds=self.settings.send.undo_seconds)
        item = self.store.record("outbox", mid)
        assert item is not None
        item["not_before"] = (now + delay).isoformat()
        self.store.put_record("outbox", item)
        draft.update(state="queued", note_message_id=mid, updated=now.isoformat())
        self.store.put_record("drafts", draft)
        self._mark_acted(draft)
        return f"queued note to {draft['contact']} (leaves in {delay.seconds} s)"

    def _undo(self, rec: dict[str, Any], draft: dict[str, Any], now: datetime) -> str:
        mid = draft.get("note_message_id", "")
        item = self.store.record("outbox", mid) if mid else None
        if item is not None and item["state"] == outbox.QUEUED:
            item.update(state="cancelled", updated=now.isoformat(), detail="undone by the owner")
            self.store.put_record("outbox", item)
            draft.update(state="pending", updated=now.isoformat())
            self.store.put_record("drafts", draft)
            self._notice(f"cancelled: nothing was sent to {self._label(draft)}",
                         "Your note was cancelled before it left. Reply to the draft again "
                         "to send something else.", rec, now)
            return "undone"
        self._notice(f"too late to undo the note to {self._label(draft)}",
                     "The note had already left (or there was none to undo).", rec, now)
        return "refused: too late to undo"

    def _ask(self, rec: dict[str, Any], draft: dict[str, Any], text: str, subject: str,
             now: datetime, why: list[str], need: str = "yes") -> str:
        owner = self.settings.owner
        token = new_token()
        msg = build_confirm(text=text, contact_label=self._label(draft), why=why,
                            subject=subject, owner_name=owner.name, owner_address=owner.address,
                            token=token, now=now, tz=owner.tz, domain=self.domain,
                            in_reply_to=rec["message_id"], need=need)
        outbox.enqueue(self.store, msg, kind="confirm", mail_from=owner.address,
                       rcpts=[self.settings.digest.to], now=now, owner_only=True,
                       ref=draft["token"])
        draft.update(state="confirm", confirm_token=token, confirm_text=text,
                     confirm_note_subject=subject, confirm_need=need,
                     confirm_subject=str(msg["Subject"]), updated=now.isoformat())
        self.store.put_record("drafts", draft)
        return "asked the owner to confirm: " + "; ".join(why)

    def _refuse(self, rec: dict[str, Any], now: datetime, why: str,
                draft: dict[str, Any] | None = None) -> str:
        who = f" to {self._label(draft)}" if draft else ""
        self._notice(f"I did not send your note{who}",
                     f"I did not send anything{who}, because {why}.\n\n"
                     f"Your reply: \"{rec.get('subject', '')}\"", rec, now)
        log.warning("refused owner reply %s: %s", rec["message_id"], why)
        return f"refused: {why}"

    # -- helpers

    def _notice(self, subject: str, body: str, rec: dict[str, Any], now: datetime) -> None:
        self.notice(subject, body, rec["message_id"], now)

    def notice(self, subject: str, body: str, about: str, now: datetime) -> None:
        """Queue a short email to the owner (committed with the caller's next commit)."""
        owner = self.settings.owner
        msg = build_notice(subject=subject, body=body, owner_name=owner.name,
                           owner_address=owner.address, token=new_token(), now=now,
                           tz=owner.tz, domain=self.domain, in_reply_to=about)
        outbox.enqueue(self.store, msg, kind="notice", mail_from=owner.address,
                       rcpts=[self.settings.digest.to], now=now, owner_only=True, ref=about)

    def _set_draft(self, draft: dict[str, Any], state: str, now: datetime) -> str:
        draft.update(state=state, updated=now.isoformat())
        self.store.put_record("drafts", draft)
        return state

    def _mark_acted(self, draft: dict[str, Any]) -> None:
        sid = f"{draft.get('digest_date', '')}|{draft['contact']}"
        sugg = self.store.record("suggestions", sid)
        if sugg is not None:
            sugg["acted"] = True
            self.store.put_record("suggestions", sugg)

    @staticmethod
    def _label(draft: dict[str, Any] | None) -> str:
        if not draft:
            return "the customer"
        return str(draft.get("contact_name") or draft["contact"])

