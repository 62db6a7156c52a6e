"""Who to write to this morning: a pure ranking of customers, one human reason each.

:func:`rank` takes touchpoints, contact state, past suggestions, ``now`` and the owner's
time zone, and returns a short list of :class:`~mailbot.models.Pick`. It does no I/O and
never reads the clock; the same data and the same date give the same list.

How a list is made
==================

1. **Only the past counts.** Touchpoints dated after ``now`` are ignored (so
   ``--as-of`` works); suggestions made on the owner's current local day or later are
   ignored too, so ranking again on the same morning gives the same list.
2. **Hard gates** (a gated person is not a candidate at all):

   * status ``opted_out``, ``bounced`` or ``not_customer``; a touchpoint flagged
     ``opt_out`` gates as well, whatever the status says;
   * ``snoozed_until`` later than ``now``;
   * contact cooldown: an outbound touchpoint within ``contact_cooldown_days``. Answering
     is never blocked by it: when the customer's newest message is newer than the
     owner's last one and needs a reply (or sounds unhappy), the person stays a
     candidate, for that message only;
   * suggestion cooldown: suggested within ``suggestion_cooldown_days`` x
     ``ignored_backoff_factor`` ** k (at most ``max_suggestion_cooldown_days``), where k
     counts the most recent suggestions that were ignored in a row. A suggestion counts
     as acted on when ``Suggestion.acted`` is set or the owner wrote to the customer
     after it; acting resets k to 0. With ``answer_bypasses_suggestion_cooldown`` a
     message needing an answer that arrived *after* the last suggestion is not blocked.

3. **Signals**; each yields a score = reason weight x strength (strength between 1 and
   2), and a person's strongest signal is their one reason:

   * ``UNANSWERED``: the newest inbound message with ``needs_reply`` that came after the
     owner's last outbound one, waiting at least ``unanswered_min_business_days``
     business days (Monday to Friday, counted on the owner's local calendar: the days
     after the message's day up to and including today), and at most
     ``unanswered_max_days`` calendar days old (older is stale, not urgent). While such a
     message waits, the person is only ever suggested to answer it.
   * ``NEGATIVE``: the customer's newest inbound touchpoint has ``negative`` set (from
     ``classify``), nothing was sent to them since, and it is at most
     ``negative_max_days`` old.
   * ``LAPSED``: quiet for longer than ``lapse_factor`` x their usual gap, but less than
     ``gone_after_factor`` x (long gone: do not nag), and at least
     ``lapse_min_quiet_days``. The usual gap is learned per customer, see
     :func:`conversation_days` and :func:`usual_gap_days`; it needs at least one gap.
   * ``WELCOME``: first touchpoint ``welcome_min_days`` to ``welcome_max_days`` days ago
     and at most ``welcome_max_touchpoints`` touchpoints so far.
   * ``MILESTONE``: an anniversary (whole years) of the first touchpoint within
     ``milestone_window_days`` of today (a 29 February first contact has its anniversary
     on 28 February in other years); or the 3rd/5th/10th conversation
     (``milestone_exchanges``) begun within ``milestone_recent_days``.
   * ``NO_REASON``: at least ``quiet_loyal_min_touchpoints`` touchpoints, quiet for
     ``quiet_loyal_min_days`` or more, not long gone, and not suggested "for no reason"
     within ``no_reason_cooldown_days``.

4. **A diverse short list**: candidates sorted by score (rounded to one decimal), ties
   broken by a hash of the date and the address (so ties rotate from day to day, never
   by random state); at most ``max_per_reason`` per reason and ``size`` in all. The quota
   is relaxed only when the list would otherwise be shorter than 3 although there are
   enough candidates. Fewer than 3 picks means fewer than 3 candidates.

Data contract: touchpoint and suggestion dates are timezone-aware (UTC, as models.py
says); a customer's mood comes from ``Touchpoint.negative`` (set by classify). Cost is
linear: one pass groups touchpoints by contact, then each customer's own list is walked
a constant number of times (10,000 customers with 200,000 touchpoints take about 0.3 s).

Each pick's ``why`` is one sentence with a concrete fact (days, a subject, a count),
never a score. ``facts`` holds strings for templates; always present: ``first_name``,
``address``, ``reason``, ``last_subject``, ``last_date``, ``quiet_days``, ``quiet_for``,
``first_contact`` (ISO date), ``touchpoints``, ``conversations``, ``usual_gap`` and
``usual_gap_days`` ("" when unknown); per reason: ``waiting_days``, ``waiting_since``,
``subject`` (UNANSWERED); ``quote``, ``subject`` (NEGATIVE); ``days_since_first``
(WELCOME); ``milestone`` ("anniversary" or "exchanges"), ``years``, ``exchanges``
(MILESTONE); ``inbound`` (NO_REASON).
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from itertools import islice, repeat
from operator import add, attrgetter, le, lt, methodcaller, sub
from statistics import median

from mailbot.models import (
    Contact,
    ContactStatus,
    Direction,
    Pick,
    Reason,
    Suggestion,
    Touchpoint,
)

__all__ = [
    "REASON_WEIGHTS",
    "SPARK_CHARS",
    "RankSettings",
    "business_days_between",
    "conversation_days",
    "display_first_name",
    "gaps_between",
    "human_span",
    "population_gap_days",
    "rank",
    "sparkline",
    "usual_gap_days",
]

SPARK_CHARS = "▁▂▃▄▅▆▇█"

# How much each kind of reason matters. Strengths lie between 1 and 2, so an unhappy
# message (11-22) or an unanswered one (10-20) always beats a lapse (5-10), which beats a
# welcome (4.5-6.75), a milestone (4-8) and "for no reason" (2-4).
REASON_WEIGHTS: Mapping[Reason, float] = {
    Reason.UNANSWERED: 10.0,
    Reason.NEGATIVE: 11.0,
    Reason.LAPSED: 5.0,
    Reason.WELCOME: 4.5,
    Reason.MILESTONE: 4.0,
    Reason.NO_REASON: 2.0,
}

_MIN_LIST = 3  # the list is never shorter than this while candidates remain


@dataclass(frozen=True)
class RankSettings:
    """Every threshold of :func:`rank`, with its default. Day counts are calendar days on
    the owner's local calendar unless said otherwise.

    size: picks per list (3..7).
    contact_cooldown_days: the owner wrote to the person within this many days: skip them
        (unless they wrote back and wait for an answer).
    suggestion_cooldown_days: suggested within this many days: skip them (base value,
        before the backoff).
    no_reason_cooldown_days: "for no reason" at most once per this many days per person.
    unanswered_min_business_days: a message needing a reply is surfaced after waiting this
        many business days (Mon-Fri, owner's time zone).
    unanswered_max_days: older unanswered mail is stale, not urgent: not surfaced as such.
    lapse_factor: lapsed when quiet for more than this times the usual gap.
    lapse_min_gaps: with fewer gaps than this, the usual gap is shrunk toward the
        population median (see :func:`usual_gap_days`).
    gone_after_factor: quiet for more than this times the usual gap: long gone, not
        suggested as lapsed or "for no reason".
    welcome_min_days, welcome_max_days: the welcome window after the first touchpoint.
    quiet_loyal_min_touchpoints, quiet_loyal_min_days: "for no reason" needs this many
        touchpoints and this much quiet.
    max_per_reason: quota per reason in one list.
    ignored_backoff_factor: each consecutive ignored suggestion multiplies the suggestion
        cooldown by this.
    max_suggestion_cooldown_days: the backoff stops growing here.
    answer_bypasses_suggestion_cooldown: a message needing an answer that arrived after
        the last suggestion is not blocked by the suggestion cooldown.
    negative_max_days: an unhappy last message is surfaced for this long.
    lapse_min_quiet_days: nobody is "lapsed" after less quiet than this.
    welcome_max_touchpoints: "new" means at most this many touchpoints so far.
    milestone_window_days: anniversaries within this many days of today count.
    milestone_exchanges: conversation counts worth a thank-you.
    milestone_recent_days: ...when that conversation began within this many days.
    conversation_reopen_days: after more than this many days without mail either way,
        even a reply in an old thread starts a new conversation (see
        :func:`conversation_days`).
    default_gap_days: the population's usual gap when nobody has enough history.
    """

    size: int = 5
    contact_cooldown_days: int = 30
    suggestion_cooldown_days: int = 30
    no_reason_cooldown_days: int = 90
    unanswered_min_business_days: int = 2
    unanswered_max_days: int = 60
    lapse_factor: float = 2.0
    lapse_min_gaps: int = 3
    gone_after_factor: float = 6.0
    welcome_min_days: int = 7
    welcome_max_days: int = 30
    quiet_loyal_min_touchpoints: int = 6
    quiet_loyal_min_days: int = 45
    max_per_reason: int = 2
    ignored_backoff_factor: float = 2.0
    max_suggestion_cooldown_days: int = 365
    answer_bypasses_suggestion_cooldown: bool = True
    negative_max_days: int = 30
    lapse_min_quiet_days: int = 14
    welcome_max_touchpoints: int = 4
    milestone_window_days: int = 3
    milestone_exchanges: tuple[int, ...] = (3, 5, 10)
    milestone_recent_days: int = 7
    conversation_reopen_days: int = 4
    default_gap_days: float = 30.0

    def __post_init__(self) -> None:
        problems = []
        if not 3 <= self.size <= 7:
            problems.append(f"size must be 3..7, not {self.size}")
        if self.max_per_reason < 1:
            problems.append("max_per_reason must be at least 1")
        if self.lapse_factor <= 0 or self.gone_after_factor <= self.lapse_factor:
            problems.append("need 0 < lapse_factor < gone_after_factor")
        if self.lapse_min_gaps < 1:
            problems.append("lapse_min_gaps must be at least 1")
        if self.welcome_min_days > self.welcome_max_days:
            problems.append("welcome_min_days must not exceed welcome_max_days")
        if self.ignored_backoff_factor < 1:
            problems.append("ignored_backoff_factor must be at least 1")
        if self.default_gap_days <= 0:
            problems.append("default_gap_days must be positive")
        if problems:
            raise ValueError("RankSettings: " + "; ".join(problems))


# --------------------------------------------------------------------------- helpers


def _local_ordinal(when: datetime, tz: tzinfo) -> int:
    return when.astimezone(tz).toordinal()


def _weekdays_through(ordinal: int) -> int:
    """How many Mondays-Fridays lie in ordinals 1..ordinal (ordinal 1 is a Monday)."""
    weeks, rest = divmod(ordinal, 7)
    return weeks * 5 + min(rest, 5)


def business_days_between(start: datetime, end: datetime, tz: tzinfo) -> int:
    """Business days (Mon-Fri) after ``start``'s local day up to and including ``end``'s.

    Both are read on the calendar of ``tz``: a Thursday email is 4 business days old on
    the next Wednesday (Fri, Mon, Tue, Wed). 0 when ``end`` is not on a later day.
    """
    a = _local_ordinal(start, tz)
    b = _local_ordinal(end, tz)
    if b <= a:
        return 0
    return _weekdays_through(b) - _weekdays_through(a)


def conversation_days(
    touchpoints: Sequence[Touchpoint], tz: tzinfo, reopen_days: int = 4
) -> list[int]:
    """Local-day ordinals (in ``tz``) on which a conversation with one customer began.

    ``touchpoints`` are one customer's (any order). A touchpoint begins a conversation
    when it opens a thread not seen before (``thread_key``, else its ``message_id``), or
    when more than ``reopen_days`` passed since the customer's previous touchpoint (a
    reply to an old thread months later is a new contact). So replies going back and
    forth for a few days are one conversation, not many contacts, and without thread
    keys this is simply the distinct contact days. Several beginnings on one day count
    once; the result is ascending and distinct.
    """
    ordered = sorted(touchpoints, key=_BY_DATE)
    dates = [tp.date for tp in ordered]
    if not dates:
        return []
    return _conversations(
        ordered, dates, _LocalCalendar(tz, dates[0], dates[-1]).days, reopen_days
    )[0]


def gaps_between(days: Sequence[int]) -> list[int]:
    """Gaps in days between consecutive (ascending, distinct) day ordinals."""
    return list(map(sub, islice(days, 1, None), days))


def usual_gap_days(gaps: Sequence[int], population_median: float, min_gaps: int = 3) -> float:
    """A customer's usual gap between conversations, in days (at least 1).

    The median of their own ``gaps``. With fewer than ``min_gaps`` gaps it is shrunk
    toward the population's median gap by a weighted average: with n gaps,
    ``(n * own_median + (min_gaps - n) * population_median) / min_gaps`` (so one gap of
    10 days among people who usually write every 60 counts as (10 + 2 x 60) / 3 = 43.3
    days with the default ``min_gaps`` of 3). With no gaps it is the population median.
    """
    own = float(median(gaps)) if gaps else 0.0
    return _shrunk(len(gaps), own, population_median, min_gaps)


def _shrunk(n: int, own: float, population: float, min_gaps: int) -> float:
    if n >= min_gaps:
        return max(1.0, own)
    return max(1.0, (n * own + (min_gaps - n) * population) / min_gaps)


def population_gap_days(own_medians: Sequence[float], default: float = 30.0) -> float:
    """The median of customers' own median gaps; ``default`` when there are none."""
    return float(median(own_medians)) if own_medians else default


def sparkline(counts: Sequence[int]) -> str:
    """A Unicode bar per count, scaled to the largest: zero is the lowest bar, any
    non-zero count at least the second, the largest the full block."""
    top = max(counts, default=0)
    if top <= 0:
        return SPARK_CHARS[0] * len(counts)
    last = len(SPARK_CHARS) - 1
    return "".join(
        SPARK_CHARS[0] if c <= 0 else SPARK_CHARS[max(1, math.ceil(c / top * last))] for c in counts
    )


def human_span(days: float) -> str:
    """``3`` -> "3 days", ``21`` -> "3 weeks", ``75`` -> "2 months", ``800`` -> "2 years"."""
    d = max(0, round(days))
    if d < 14:
        return "1 day" if d == 1 else f"{d} days"
    if d < 60:
        return f"{round(d / 7)} weeks"
    if d < 730:
        return f"{max(2, round(d / 30.44))} months"
    return f"{round(d / 365.25)} years"


_UNITS = (("day", 1.0), ("week", 7.0), ("month", 30.44), ("year", 365.25))


def _unit_for(days: float) -> tuple[str, float]:
    """The unit a gap of ``days`` reads best in: 3 -> days, 7 -> week, 12 -> days,
    21 -> weeks, 90 -> months, 800 -> years."""
    d = max(1, round(days))
    if d < 7 or 10 <= d < 14:
        return _UNITS[0]
    if d < 60:
        return _UNITS[1]
    if d < 730:
        return _UNITS[2]
    return _UNITS[3]


def _in_unit(days: float, unit: tuple[str, float]) -> str:
    """``days`` in ``unit``: (63, week) -> "9 weeks"."""
    n = max(1, round(days / unit[1]))
    return f"1 {unit[0]}" if n == 1 else f"{n} {unit[0]}s"


def _every(days: float) -> str:
    """``1`` -> "every day", ``7`` -> "every week", ``21`` -> "every 3 weeks"."""
    unit = _unit_for(days)
    n = max(1, round(max(1.0, days) / unit[1]))
    return f"every {unit[0]}" if n == 1 else f"every {n} {unit[0]}s"


_TITLES = frozenset(
    {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "herr", "frau", "sr", "sra",
     "srta", "mme", "mlle", "m"}
)  # fmt: skip
_COMPANY = frozenset(
    {"ltd", "limited", "inc", "llc", "gmbh", "ag", "sarl", "sas", "srl", "bv", "nv", "plc", "co",
     "corp", "company", "team", "support", "sales", "info", "office", "shop", "store", "studio"}
)  # fmt: skip


def display_first_name(name: str, address: str) -> str:
    """What to call someone in a sentence: their first name when the name looks like a
    person's ("Lima, Ana" -> "Ana", "Dr. Lee Park" -> "Lee"), the whole name for a
    company, else the local part of ``address``."""
    cleaned = " ".join(name.replace('"', " ").split())
    if not cleaned or "@" in cleaned:
        return address.split("@", 1)[0]
    if "," in cleaned:
        last, _, rest = cleaned.partition(",")
        cleaned = rest.strip() or last.strip()
    words = cleaned.split()
    if any(w.lower().strip(".,&()") in _COMPANY for w in words):
        return cleaned
    words = [w for w in words if w.lower().rstrip(".") not in _TITLES] or words
    first = words[0].strip("()[]<>")
    if not any(c.isalpha() for c in first):
        return cleaned
    if first.isupper() or first.islower():
        first = first[:1].upper() + first[1:].lower()
    return first


_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|tr|rif|r|antw|odp|res|enc|ynt|fs)\s*(?:\[\d+\])?\s*[:\uff1a]\s*)+",
    re.IGNORECASE,
)


def _clean_subject(subject: str, limit: int = 50) -> str:
    text = _SUBJECT_PREFIX.sub("", " ".join(subject.split())).strip()
    return _shorten(text, limit)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] or text[: limit - 1]
    return cut.rstrip(" ,.;:-") + "…"


_GREETING = re.compile(
    r"^(?:hi|hello|hey|dear|hallo|hej|moin|liebe[rs]?|bonjour|salut|hola|ciao|buongiorno|"
    r"good (?:morning|afternoon|evening))\b[^.!?,;:]{0,40}[.!?,;:]\s*",
    re.IGNORECASE,
)


def _quote(tp: Touchpoint, limit: int = 60) -> str:
    """The customer's own words: the first sentence of the snippet after any greeting
    ("Hi Olivia,"), shortened, without its final full stop; else the subject."""
    snippet = _GREETING.sub("", " ".join(tp.snippet.split()), count=1)
    if snippet:
        match = re.match(r"(.+?[.!?])(?:\s|$)", snippet)
        sentence = match.group(1) if match else snippet
        return _shorten(sentence.removesuffix("."), limit)
    return _clean_subject(tp.subject, limit)


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)  # fmt: skip
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                 "nine", "ten")  # fmt: skip


def _day_name(d: date, today: date) -> str:
    """ "Thursday" within the last week, else "3 March" (with the year when not this one)."""
    delta = (today - d).days
    if delta == 0:
        return "today"
    if delta == 1:
        return "yesterday"
    if 1 < delta < 7:
        return _WEEKDAYS[d.weekday()]
    text = f"{d.day} {_MONTHS[d.month - 1]}"
    return text if d.year == today.year else f"{text} {d.year}"


def _days_ago(days: int) -> str:
    if days <= 0:
        return "today"
    if days == 1:
        return "yesterday"
    return f"{days} days ago"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _years_phrase(years: int) -> str:
    word = _NUMBER_WORDS[years] if years < len(_NUMBER_WORDS) else str(years)
    return f"{word.capitalize()} {'year' if years == 1 else 'years'}"


def _anniversary(first: date, year: int) -> date:
    """``first``'s month and day in ``year``; 29 February falls on the 28th otherwise."""
    try:
        return first.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def _tiebreak(day: date, address: str) -> int:
    digest = hashlib.blake2b(f"{day.isoformat()}|{address}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


# --------------------------------------------------------------------------- history


_BY_DATE = attrgetter("date")


class _History:
    """What ranking needs to know about one customer. Linear in their touchpoints: one
    pass for conversations, a short backward scan for the latest messages."""

    __slots__ = (
        "conversation_count",
        "first",
        "first_day",
        "gap_count",
        "last",
        "last_conversation_day",
        "last_conversation_tp",
        "last_day",
        "last_in",
        "last_out",
        "own_median",
        "pending_reply",
        "tps",
    )

    def __init__(
        self, tps: list[Touchpoint], dates: list[datetime], cal: _LocalCalendar, reopen_days: int
    ) -> None:
        """``tps``: one customer's touchpoints, oldest first, at least one; ``dates``
        their dates. Only counts are kept (no per-touchpoint lists), so that ranking
        10,000 customers leaves little for the garbage collector to walk."""
        self.tps = tps
        self.first = tps[0]
        self.last = tps[-1]
        self.first_day = cal.day(dates[0])
        self.last_day = cal.day(dates[-1])
        days, began = _conversations(tps, dates, cal.days, reopen_days)
        self.conversation_count = len(days)
        self.last_conversation_day = days[-1]
        self.last_conversation_tp = tps[began]
        gaps = gaps_between(days)
        self.gap_count = len(gaps)
        self.own_median = float(median(gaps)) if gaps else 0.0

        # Backward scan: the customer's messages since the owner last wrote, then (only
        # when none) on to their latest message.
        last_in: Touchpoint | None = None
        last_out: Touchpoint | None = None
        pending: Touchpoint | None = None
        outbound = Direction.OUTBOUND
        i = len(tps) - 1
        while i >= 0:
            tp = tps[i]
            if tp.direction == outbound:
                last_out = tp
                break
            if last_in is None:
                last_in = tp
            if tp.needs_reply:
                pending = tp
                break
            i -= 1
        if last_out is None or last_in is None:
            i -= 1
            while i >= 0 and (last_out is None or last_in is None):
                tp = tps[i]
                if tp.direction == outbound:
                    if last_out is None:
                        last_out = tp
                elif last_in is None:
                    last_in = tp
                i -= 1
        self.last_in = last_in
        self.last_out = last_out
        self.pending_reply = pending

    @property
    def inbound_count(self) -> int:
        inbound = Direction.INBOUND
        return sum(1 for tp in self.tps if tp.direction == inbound)


class _LocalCalendar:
    """Local-day ordinals in ``tz`` for many UTC datetimes, exact, without a time-zone
    lookup per datetime.

    The zone's UTC-offset changes between ``start`` and ``end`` are found once (a scan
    by day, then a bisection to the second); a date's local day is then its UTC date
    after adding the offset of its period. The range grows back on demand, to at most
    ``_CALENDAR_SPAN`` before ``end``; dates outside it, or not in ``timezone.utc``,
    take the slow exact path (``astimezone``).
    """

    __slots__ = ("_changes", "_end", "_in_tz", "_limit", "_offsets", "_start", "_tz")

    def __init__(self, tz: tzinfo, start: datetime, end: datetime) -> None:
        self._tz = tz
        self._in_tz = methodcaller("astimezone", tz)
        start = start.astimezone(UTC).replace(microsecond=0)
        end = end.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        self._start, self._end = start, end
        self._limit = end - _CALENDAR_SPAN
        # _offsets[i] holds from _changes[i - 1] (inclusive) to _changes[i] (exclusive).
        self._changes, self._offsets = self._scan(start, end)

    def _offset(self, when: datetime) -> timedelta:
        return when.astimezone(self._tz).utcoffset() or timedelta(0)

    def _scan(self, start: datetime, end: datetime) -> tuple[list[datetime], list[timedelta]]:
        second = timedelta(seconds=1)
        step = timedelta(days=1)
        changes: list[datetime] = []
        offsets = [self._offset(start)]
        t, before = start, offsets[0]
        while t < end:
            nxt = min(t + step, end)
            after = self._offset(nxt)
            if after != before:
                lo, hi = t, nxt  # offset(lo) == before, offset(hi) == after
                while hi - lo > second:
                    mid = lo + timedelta(seconds=(hi - lo) // second // 2)
                    if self._offset(mid) == before:
                        lo = mid
                    else:
                        hi = mid
                changes.append(hi)
                offsets.append(after)
                before = after
            t = nxt
        return changes, offsets

    def _fast(self, first: datetime, last: datetime) -> bool:
        if first.tzinfo is not UTC or last.tzinfo is not UTC or last >= self._end:
            return False
        if first < self._start:
            if first < self._limit:
                return False
            start = max(self._limit, first.replace(microsecond=0) - timedelta(days=30))
            changes, offsets = self._scan(start, self._start)
            self._changes = changes + self._changes
            self._offsets = offsets + self._offsets[1:]
            self._start = start
        return True

    def day(self, when: datetime) -> int:
        """The local-day ordinal of one datetime."""
        if not self._fast(when, when):
            return when.astimezone(self._tz).toordinal()
        return (when + self._offsets[bisect_right(self._changes, when)]).toordinal()

    def days(self, dates: Sequence[datetime]) -> list[int]:
        """The local-day ordinals of ascending ``dates`` (all in ``timezone.utc``)."""
        if not dates:
            return []
        if not self._fast(dates[0], dates[-1]):
            return list(map(_ordinal_of, map(self._in_tz, dates)))
        changes, offsets = self._changes, self._offsets
        i = bisect_right(changes, dates[0])
        j = bisect_right(changes, dates[-1])
        if i == j:
            return list(map(_ordinal_of, map(add, dates, repeat(offsets[i]))))
        out: list[int] = []
        lo = 0
        for k in range(i, j):
            cut = bisect_left(dates, changes[k], lo)
            out.extend(map(_ordinal_of, map(add, dates[lo:cut], repeat(offsets[k]))))
            lo = cut
        out.extend(map(_ordinal_of, map(add, dates[lo:], repeat(offsets[j]))))
        return out


def _conversations(
    tps: Sequence[Touchpoint],
    dates: Sequence[datetime],
    local_days: Callable[[Sequence[datetime]], list[int]],
    reopen_days: int,
) -> tuple[list[int], int]:
    """:func:`conversation_days` for ascending ``tps`` with their ``dates``, and the
    index of the touchpoint that began the last conversation (-1 when none)."""
    if not tps:
        return [], -1
    reopen = timedelta(days=reopen_days)
    seen: set[str] = set()
    starts: list[int] = []
    previous = dates[0]
    for i, tp in enumerate(tps):
        when = dates[i]
        key = tp.thread_key or tp.message_id
        if key not in seen:
            seen.add(key)
            starts.append(i)
        elif when - previous > reopen:
            starts.append(i)
        previous = when
    local = local_days(list(map(dates.__getitem__, starts)))
    days = list(dict.fromkeys(local))
    if not all(map(lt, days, islice(days, 1, None))):  # a wall clock turned back at midnight
        days = sorted(set(days))
    return days, starts[local.index(days[-1])]


_CALENDAR_START = timedelta(days=400)  # extended on demand, back to _CALENDAR_SPAN
_CALENDAR_SPAN = timedelta(days=366 * 30)  # older dates take the slow path
_ordinal_of = date.toordinal


@dataclass(frozen=True, slots=True)
class _Signal:
    reason: Reason
    score: float
    tp: Touchpoint | None = None  # the message concerned, if any
    number: int = 0  # business days / years / conversation count / days since first
    offset: int = 0  # anniversary: days from today (negative: past)
    kind: str = ""  # MILESTONE: "anniversary" or "exchanges"


@dataclass(frozen=True, slots=True)
class _Candidate:
    address: str
    contact: Contact
    history: _History
    signal: _Signal
    usual: float | None
    tiebreak: int

    @property
    def key(self) -> tuple[float, int]:
        return (-round(self.signal.score, 1), self.tiebreak)


def _ignored_in_a_row(suggestions: Sequence[Suggestion], last_out: Touchpoint | None) -> int:
    """Most recent suggestions ignored in a row: not acted on, no outbound mail after."""
    ignored = 0
    for sug in reversed(suggestions):
        if sug.acted or (last_out is not None and last_out.date > sug.date):
            break
        ignored += 1
    return ignored


# --------------------------------------------------------------------------- rank


def rank(
    touchpoints: Sequence[Touchpoint],
    contacts: Mapping[str, Contact],
    suggestions: Sequence[Suggestion],
    now: datetime,
    tz: tzinfo,
    settings: RankSettings | None = None,
) -> list[Pick]:
    """This morning's short list, best first. See the module docstring for the rules.

    ``contacts`` maps normalised addresses to contacts; touchpoints of an alias count for
    the contact that lists it; a touchpoint's contact missing from ``contacts`` is a
    plain customer with no name. ``now`` must be timezone-aware; ``tz`` is the owner's.
    """
    s = settings if settings is not None else RankSettings()
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("rank() needs a timezone-aware now")
    today = now.astimezone(tz).date()
    today_ord = today.toordinal()

    alias_of: dict[str, str] = {}
    for address, contact in contacts.items():
        for alias in contact.aliases:
            if alias not in contacts:
                alias_of[alias] = address

    by_contact: dict[str, list[Touchpoint]] = {}
    opted_out: set[str] = set()  # a touchpoint flagged opt_out gates, whatever the status
    for tp in touchpoints:
        address = alias_of.get(tp.contact, tp.contact) if alias_of else tp.contact
        bucket = by_contact.get(address)
        if bucket is None:
            by_contact[address] = [tp]
        else:
            bucket.append(tp)
        if tp.opt_out:
            opted_out.add(address)

    suggested: dict[str, list[Suggestion]] = {}
    for sug in suggestions:
        if _local_ordinal(sug.date, tz) >= today_ord:
            continue  # today's own list (or a later one): ranking again is idempotent
        address = alias_of.get(sug.contact, sug.contact) if alias_of else sug.contact
        suggested.setdefault(address, []).append(sug)
    for sugs in suggested.values():
        sugs.sort(key=attrgetter("date"))

    customer = ContactStatus.CUSTOMER
    cal = _LocalCalendar(tz, now - _CALENDAR_START, now)
    histories: list[tuple[str, Contact, _History]] = []
    for address in sorted(by_contact):
        known = contacts.get(address)
        if known is not None and known.status != customer:
            continue
        if address in opted_out:
            continue
        tps = by_contact[address]
        dates = list(map(_BY_DATE, tps))
        if not all(map(le, dates, islice(dates, 1, None))):
            tps.sort(key=_BY_DATE)  # stable: equal dates keep their input order
            dates = list(map(_BY_DATE, tps))
        if dates[-1] > now:  # only the past counts (--as-of)
            keep = bisect_right(dates, now)
            del tps[keep:], dates[keep:]
        if tps:
            contact = known if known is not None else Contact(address=address)
            histories.append(
                (address, contact, _History(tps, dates, cal, s.conversation_reopen_days))
            )

    population = population_gap_days(
        [h.own_median for _, _, h in histories if h.gap_count >= s.lapse_min_gaps],
        s.default_gap_days,
    )

    candidates: list[_Candidate] = []
    for address, contact, history in histories:
        if contact.snoozed_until is not None and contact.snoozed_until > now:
            continue
        usual = (
            _shrunk(history.gap_count, history.own_median, population, s.lapse_min_gaps)
            if history.gap_count
            else None
        )
        signal = _best_signal(
            history, suggested.get(address, ()), usual, population, now, today_ord, tz, cal, s
        )
        if signal is not None:
            candidates.append(
                _Candidate(address, contact, history, signal, usual, _tiebreak(today, address))
            )

    chosen = _short_list(candidates, s)
    return [_pick(c, today, today_ord, tz) for c in chosen]


def _best_signal(
    h: _History,
    sugs: Sequence[Suggestion],
    usual: float | None,
    population: float,
    now: datetime,
    today_ord: int,
    tz: tzinfo,
    cal: _LocalCalendar,
    s: RankSettings,
) -> _Signal | None:
    answer_only = False
    newer_than: datetime | None = None  # answer signals must concern mail after this

    # A message that needs an answer (and is not stale) comes first: nothing else is
    # suggested while it waits.
    pending = h.pending_reply
    if pending is not None and today_ord - cal.day(pending.date) > s.unanswered_max_days:
        pending = None
    if pending is not None:
        answer_only = True

    last_out = h.last_out
    if last_out is not None and today_ord - cal.day(last_out.date) < s.contact_cooldown_days:
        answer_only = True

    if sugs:
        latest = sugs[-1]
        ignored = _ignored_in_a_row(sugs, last_out)
        cooldown = min(
            s.suggestion_cooldown_days * s.ignored_backoff_factor**ignored,
            float(max(s.max_suggestion_cooldown_days, s.suggestion_cooldown_days)),
        )
        if today_ord - cal.day(latest.date) < cooldown:
            if not s.answer_bypasses_suggestion_cooldown:
                return None
            answer_only = True
            newer_than = latest.date

    signals: list[_Signal] = []

    if pending is not None and (newer_than is None or pending.date > newer_than):
        waiting = business_days_between(pending.date, now, tz)
        if waiting >= s.unanswered_min_business_days:
            strength = 1.0 + min(waiting, 10) / 10.0
            signals.append(
                _Signal(Reason.UNANSWERED, REASON_WEIGHTS[Reason.UNANSWERED] * strength,
                        pending, waiting)
            )  # fmt: skip

    last_in = h.last_in
    if (
        last_in is not None
        and last_in.negative
        and (last_out is None or last_in.date > last_out.date)
        and (newer_than is None or last_in.date > newer_than)
    ):
        age = today_ord - cal.day(last_in.date)
        if age <= s.negative_max_days:
            strength = 2.0 - min(age, s.negative_max_days) / max(1, s.negative_max_days)
            signals.append(
                _Signal(Reason.NEGATIVE, REASON_WEIGHTS[Reason.NEGATIVE] * strength, last_in)
            )

    if not answer_only:
        quiet = today_ord - h.last_day
        gone_after = s.gone_after_factor * (usual if usual is not None else population)

        if usual is not None and s.lapse_min_quiet_days <= quiet < gone_after:
            ratio = quiet / usual
            if ratio > s.lapse_factor:
                closeness = 1.0 - (ratio - s.lapse_factor) / (s.gone_after_factor - s.lapse_factor)
                loyalty = min(1.0, math.log1p(h.conversation_count) / math.log(21.0))
                strength = 1.0 + 0.5 * closeness + 0.5 * loyalty
                signals.append(
                    _Signal(Reason.LAPSED, REASON_WEIGHTS[Reason.LAPSED] * strength, h.last)
                )

        age = today_ord - h.first_day
        if (
            s.welcome_min_days <= age <= s.welcome_max_days
            and len(h.tps) <= s.welcome_max_touchpoints
        ):
            span = max(1, s.welcome_max_days - s.welcome_min_days)
            strength = 1.0 + 0.5 * (1.0 - (age - s.welcome_min_days) / span)
            signals.append(
                _Signal(Reason.WELCOME, REASON_WEIGHTS[Reason.WELCOME] * strength, h.first, age)
            )

        milestone = _milestone(h, today_ord, tz, s)
        if milestone is not None:
            signals.append(milestone)

        if (
            len(h.tps) >= s.quiet_loyal_min_touchpoints
            and s.quiet_loyal_min_days <= quiet < gone_after
            and not any(
                x.reason == Reason.NO_REASON
                and today_ord - cal.day(x.date) < s.no_reason_cooldown_days
                for x in sugs
            )
        ):
            strength = 1.0 + min(len(h.tps), 50) / 50.0
            signals.append(
                _Signal(Reason.NO_REASON, REASON_WEIGHTS[Reason.NO_REASON] * strength, h.last)
            )

    if not signals:
        return None
    order = list(REASON_WEIGHTS)
    return max(signals, key=lambda sig: (sig.score, -order.index(sig.reason)))


def _milestone(h: _History, today_ord: int, tz: tzinfo, s: RankSettings) -> _Signal | None:
    weight = REASON_WEIGHTS[Reason.MILESTONE]
    first = date.fromordinal(h.first_day)
    today = date.fromordinal(today_ord)
    best: tuple[int, int] | None = None  # (offset, years)
    year = today.year
    offset = _anniversary(first, year).toordinal() - today_ord
    if offset > 182:  # early January: last year's late-December anniversary is nearer
        year -= 1
        offset = _anniversary(first, year).toordinal() - today_ord
    elif offset < -182:
        year += 1
        offset = _anniversary(first, year).toordinal() - today_ord
    if year - first.year >= 1 and abs(offset) <= s.milestone_window_days:
        best = (offset, year - first.year)
    if best is not None:
        strength = 1.5 + 0.05 * min(best[1], 10)
        return _Signal(
            Reason.MILESTONE, weight * strength, h.first, best[1], best[0], "anniversary"
        )
    count = h.conversation_count
    if (
        count in s.milestone_exchanges
        and today_ord - h.last_conversation_day <= s.milestone_recent_days
    ):
        strength = 1.2 + 0.02 * min(count, 10)
        return _Signal(
            Reason.MILESTONE, weight * strength, h.last_conversation_tp, count, 0, "exchanges"
        )
    return None


def _short_list(candidates: list[_Candidate], s: RankSettings) -> list[_Candidate]:
    ordered = sorted(candidates, key=attrgetter("key"))
    chosen: list[_Candidate] = []
    skipped: list[_Candidate] = []
    per_reason: dict[Reason, int] = {}
    for cand in ordered:
        if len(chosen) >= s.size:
            break
        reason = cand.signal.reason
        if per_reason.get(reason, 0) >= s.max_per_reason:
            skipped.append(cand)
            continue
        chosen.append(cand)
        per_reason[reason] = per_reason.get(reason, 0) + 1
    wanted = min(_MIN_LIST, s.size, len(ordered))
    if len(chosen) < wanted:
        chosen.extend(skipped[: wanted - len(chosen)])
        chosen.sort(key=attrgetter("key"))
    return chosen


# --------------------------------------------------------------------------- picks


def _monthly_counts(tps: Sequence[Touchpoint], today: date, tz: tzinfo) -> tuple[int, ...]:
    counts = [0] * 12
    current = today.year * 12 + today.month - 1
    for tp in reversed(tps):
        local = tp.date.astimezone(tz)
        back = current - (local.year * 12 + local.month - 1)
        if back >= 12:
            break
        if back >= 0:
            counts[11 - back] += 1
    return tuple(counts)


def _pick(c: _Candidate, today: date, today_ord: int, tz: tzinfo) -> Pick:
    h = c.history
    sig = c.signal
    who = display_first_name(c.contact.name, c.address)
    last_subject = _clean_subject(h.last.subject)
    quiet = today_ord - h.last_day
    facts: dict[str, str] = {
        "first_name": who,
        "address": c.address,
        "reason": sig.reason.value,
        "last_subject": last_subject,
        "last_date": h.last.date.astimezone(tz).date().isoformat(),
        "quiet_days": str(quiet),
        "quiet_for": human_span(quiet),
        "first_contact": h.first.date.astimezone(tz).date().isoformat(),
        "touchpoints": str(len(h.tps)),
        "conversations": str(h.conversation_count),
        "usual_gap": human_span(c.usual) if c.usual is not None else "",
        "usual_gap_days": str(round(c.usual)) if c.usual is not None else "",
    }
    reply_id = reply_subject = ""
    references: tuple[str, ...] = ()
    tp = sig.tp

    if sig.reason in (Reason.UNANSWERED, Reason.NEGATIVE) and tp is not None:
        reply_id = tp.message_id
        reply_subject = tp.subject
        references = tuple(dict.fromkeys(x for x in (tp.thread_key, tp.message_id) if x))
        facts["subject"] = _clean_subject(tp.subject)

    if sig.reason == Reason.UNANSWERED and tp is not None:
        when = _day_name(tp.date.astimezone(tz).date(), today)
        facts["waiting_days"] = str(sig.number)
        facts["waiting_since"] = when
        subject = f" ('{facts['subject']}')" if facts["subject"] else ""
        from_when = "from today" if when == "today" else (
            f"of {when}" if when[0].isdigit() else f"from {when}"
        )  # fmt: skip
        why = (
            f"{who}'s email {from_when}{subject} is still unanswered "
            f"({_plural(sig.number, 'business day')})."
        )
    elif sig.reason == Reason.NEGATIVE and tp is not None:
        quote = _quote(tp)
        facts["quote"] = quote
        if quote:
            why = f"{who}'s last message sounded unhappy ('{quote}'). Worth a personal word?"
        else:
            when = _day_name(tp.date.astimezone(tz).date(), today)
            why = f"{who}'s last message ({when}) sounded unhappy. Worth a personal word?"
    elif sig.reason == Reason.LAPSED:
        usual = c.usual if c.usual is not None else 0.0
        last = f" (last: '{last_subject}')" if last_subject else ""
        verb = "writes" if h.last_in is not None else "hears from you"
        quiet_for = _in_unit(quiet, _unit_for(usual))  # "every 3 weeks; quiet for 9 weeks"
        why = (
            f"{who} usually {verb} {_every(usual)}; quiet for {quiet_for}{last}. "
            "A hello with no agenda?"
        )
    elif sig.reason == Reason.WELCOME and tp is not None:
        facts["days_since_first"] = str(sig.number)
        subject = _clean_subject(tp.subject)
        about = f" ('{subject}')" if subject else ""
        if tp.direction == Direction.INBOUND:
            why = f"{who} first wrote {sig.number} days ago{about}; a welcome note?"
        else:
            why = f"You first wrote to {who} {sig.number} days ago{about}; a welcome note?"
    elif sig.reason == Reason.MILESTONE and tp is not None and sig.kind == "anniversary":
        facts["milestone"] = "anniversary"
        facts["years"] = str(sig.number)
        day = date.fromordinal(today_ord + sig.offset)
        if sig.offset == 0:
            when = "today"
        elif sig.offset == -1:
            when = "yesterday"
        elif sig.offset == 1:
            when = "tomorrow"
        elif sig.offset < 0:
            when = f"on {_WEEKDAYS[day.weekday()]}"
        else:
            when = f"this {_WEEKDAYS[day.weekday()]}"
        whose = f"{who}'s first email" if tp.direction == Direction.INBOUND else (
            f"your first email to {who}"
        )  # fmt: skip
        why = f"{_years_phrase(sig.number)} since {whose} {when}."
    elif sig.reason == Reason.MILESTONE and tp is not None:
        facts["milestone"] = "exchanges"
        facts["exchanges"] = str(sig.number)
        began = today_ord - _local_ordinal(tp.date, tz)
        subject = _clean_subject(tp.subject)
        about = f" ('{subject}')" if subject else ""
        why = (
            f"{who}'s {_ordinal(sig.number)} conversation with you began "
            f"{_days_ago(began)}{about}; a thank-you for coming back?"
        )
    else:  # NO_REASON
        inbound = h.inbound_count
        facts["inbound"] = str(inbound)
        if inbound >= 2:
            told = f"{who} has written {inbound} times"
        else:
            told = f"You and {who} have exchanged {len(h.tps)} emails"
        why = f"{told} and it has been {human_span(quiet)}; a hello for no reason?"

    return Pick(
        contact=c.address,
        name=" ".join(c.contact.name.split()),
        reason=sig.reason,
        why=why,
        score=round(sig.score, 3),
        recent=tuple(reversed(h.tps[-3:])),
        monthly_counts=_monthly_counts(h.tps, today, tz),
        reply_to_message_id=reply_id,
        reply_to_subject=reply_subject,
        reply_to_references=references,
        facts=facts,
    )
