"""When the digest is due: pure, with an injected 'now'."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from mailbot.scheduling import DigestSchedule, due_digest, last_fire_at_or_before

BERLIN = ZoneInfo("Europe/Berlin")
S = DigestSchedule(hour=7, minute=30, days="mon-fri", tz=BERLIN, grace=timedelta(minutes=180))


def local(y: int, m: int, d: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=BERLIN).astimezone(UTC)


def test_due_at_the_time_and_only_once_per_date() -> None:
    now = local(2026, 11, 24, 7, 30)  # a Tuesday
    assert due_digest(S, now, set()) == date(2026, 11, 24)
    # restart at 07:59:59 after it was sent: nothing more
    assert due_digest(S, local(2026, 11, 24, 7, 59, 59), {date(2026, 11, 24)}) is None


def test_not_due_before_the_time() -> None:
    # at 07:29 the latest fire is Monday's, long out of the grace window
    assert due_digest(S, local(2026, 11, 24, 7, 29), set()) is None


def test_catch_up_within_grace_then_skip() -> None:
    assert due_digest(S, local(2026, 11, 24, 10, 29), set()) == date(2026, 11, 24)
    assert due_digest(S, local(2026, 11, 24, 10, 31), set()) is None


def test_weekends_are_skipped() -> None:
    assert due_digest(S, local(2026, 11, 28, 7, 45), set()) is None  # Saturday
    assert due_digest(S, local(2026, 11, 30, 7, 45), set()) == date(2026, 11, 30)  # Monday


def test_daylight_saving_changes_keep_the_wall_clock_time() -> None:
    # Berlin springs forward on Sun 29 Mar 2026 and falls back on Sun 25 Oct 2026
    before = last_fire_at_or_before(S, local(2026, 3, 27, 12, 0))
    after = last_fire_at_or_before(S, local(2026, 3, 30, 12, 0))
    autumn = last_fire_at_or_before(S, local(2026, 10, 26, 12, 0))
    assert before is not None and after is not None and autumn is not None
    assert before.astimezone(BERLIN).hour == after.astimezone(BERLIN).hour == 7
    assert autumn.astimezone(BERLIN).hour == 7
    assert before.utcoffset() == timedelta(hours=1) and after.utcoffset() == timedelta(hours=2)
    assert before.astimezone(UTC).hour == 6 and after.astimezone(UTC).hour == 5
    assert autumn.astimezone(UTC).hour == 6


def test_a_late_evening_schedule_keeps_its_local_date_across_midnight() -> None:
    s = DigestSchedule(hour=23, minute=30, days="*", tz=BERLIN, grace=timedelta(hours=2))
    assert due_digest(s, local(2026, 11, 25, 0, 45), set()) == date(2026, 11, 24)
