"""The shared vocabulary: frozen dataclasses passed between the pure core and adapters.

Nothing here does I/O. Addresses are normalised (lower-case, stripped) before they
are put in these objects; datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Category(StrEnum):
    CUSTOMER = "customer"
    AUTOMATED = "automated"
    BULK = "bulk"
    BOUNCE = "bounce"
    INTERNAL = "internal"
    COMMAND = "command"


class Direction(StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"


class ContactStatus(StrEnum):
    CUSTOMER = "customer"
    NOT_CUSTOMER = "not_customer"
    OPTED_OUT = "opted_out"
    BOUNCED = "bounced"


@dataclass(frozen=True)
class Mailbox:
    """One address with its display name (name may be empty)."""

    address: str
    name: str = ""


@dataclass(frozen=True)
class Message:
    """What mailbot knows about one email, from its headers and (maybe) its text part.

    ``text`` is empty when only headers were fetched. ``return_path`` is ``None``
    when the header is absent and ``""`` for the null sender ``<>``.
    """

    message_id: str  # without angle brackets; synthetic "hash-..." when the header is missing
    sender: Mailbox | None  # From
    to: tuple[Mailbox, ...] = ()
    cc: tuple[Mailbox, ...] = ()
    reply_to: tuple[Mailbox, ...] = ()
    subject: str = ""
    date: datetime | None = None
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    content_type: str = ""  # top-level, lower-case, e.g. "multipart/report"
    auto_submitted: str = ""
    precedence: str = ""
    list_id: str = ""
    list_unsubscribe: str = ""
    return_path: str | None = None
    autoreply_headers: tuple[str, ...] = ()  # names of X-Autoreply-like headers present
    text: str = ""
    defects: tuple[str, ...] = ()  # what the parser had to work around, for logs

    @property
    def recipients(self) -> tuple[Mailbox, ...]:
        return self.to + self.cc

    @property
    def thread_key(self) -> str:
        """The root of the thread: first Reference, else In-Reply-To, else itself."""
        if self.references:
            return self.references[0]
        if self.in_reply_to:
            return self.in_reply_to
        return self.message_id


@dataclass(frozen=True)
class Classification:
    """The decision about one message, with the reason kept for ``mailbot customer``."""

    category: Category
    reason: str
    direction: Direction = Direction.INBOUND
    contacts: tuple[Mailbox, ...] = ()  # the customers it concerns (customer category only)
    opt_out: bool = False


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """One customer email, in or out. ``key`` is unique: message id + direction + contact.

    Slotted: a mailbox of years holds hundreds of thousands of these in memory, and
    slots take 170 bytes where a ``__dict__`` takes 600.
    """

    message_id: str
    contact: str
    direction: Direction
    date: datetime
    subject: str
    snippet: str
    thread_key: str
    folder: str = ""
    uidvalidity: int = 0
    uid: int = 0
    reason: str = ""
    needs_reply: bool = False
    opt_out: bool = False
    negative: bool = False  # the customer's words sound unhappy (classify.detect_negative)

    @property
    def key(self) -> str:
        return f"{self.message_id}|{self.direction.value}|{self.contact}"


@dataclass(frozen=True)
class Contact:
    address: str
    name: str = ""
    status: ContactStatus = ContactStatus.CUSTOMER
    status_reason: str = ""
    aliases: tuple[str, ...] = ()
    snoozed_until: datetime | None = None
    value: str = ""
    tags: tuple[str, ...] = ()
    imported: bool = False


@dataclass(frozen=True)
class FolderState:
    """Where ingestion stands in one IMAP folder.

    Every UID in ``[backfill_next, last_uid]`` (within ``history_days``) is done;
    UIDs above ``last_uid`` are new mail (catch-up, ascending); UIDs below
    ``backfill_next`` are the rest of the backfill (descending).
    """

    folder: str
    uidvalidity: int
    last_uid: int
    backfill_next: int
    backfill_done: bool = False
    last_sync: datetime | None = None


@dataclass(frozen=True)
class ContactSummary:
    """One row of ``mailbot customers``."""

    address: str
    name: str
    status: ContactStatus
    first_seen: datetime | None
    last_inbound: datetime | None
    last_outbound: datetime | None
    touchpoints: int
    needs_reply: bool
    extra: dict[str, str] = field(default_factory=dict, compare=False)


# Message-IDs that mailbot itself generates start with this local-part prefix,
# e.g. "mailbot.draft.<token>@linen.example". A reference to one marks a reply
# to mailbot (the ``command`` category).
MAILBOT_ID_PREFIX = "mailbot."


class Reason(StrEnum):
    """Why a customer is on the morning list: one dominant reason each."""

    UNANSWERED = "unanswered"
    LAPSED = "lapsed"
    WELCOME = "welcome"
    MILESTONE = "milestone"
    NEGATIVE = "negative"
    NO_REASON = "no_reason"


@dataclass(frozen=True)
class Suggestion:
    """A past appearance of a contact on the morning list."""

    contact: str
    date: datetime
    reason: Reason
    acted: bool = False  # the owner wrote to them (reply-to-send or by hand) afterwards


@dataclass(frozen=True)
class Pick:
    """One entry of the morning short list, with everything the draft and digest need."""

    contact: str
    name: str
    reason: Reason
    why: str  # one human sentence with a concrete fact, never a score
    score: float
    recent: tuple[Touchpoint, ...] = ()  # last two or three touchpoints, newest first
    monthly_counts: tuple[int, ...] = ()  # touchpoints per month over a year, oldest first
    reply_to_message_id: str = ""  # for UNANSWERED: the customer's message to answer
    reply_to_subject: str = ""
    reply_to_references: tuple[str, ...] = ()
    facts: dict[str, str] = field(default_factory=dict, compare=False)  # for templates
