"""When the morning digest is due: pure functions over APScheduler's cron trigger and ``now``.

APScheduler (3.x) fires the job at ``digest.time`` in ``owner.timezone`` on
``digest.days`` while the daemon runs. What it cannot know is what happened
while the daemon was down, so at start-up (and at every fire) the daemon asks
:func:`due_digest`: the latest scheduled time at or before ``now``, if it is
within the grace window and that local date has no digest yet. A digest is
recorded per local date before it is sent, so a restart never sends two.
Daylight-saving changes are the trigger's business: it computes wall-clock
times in the owner's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from apscheduler.triggers.cron import CronTrigger


@dataclass(frozen=True)
class DigestSchedule:
    hour: int
    minute: int
    days: str  # cron day_of_week, e.g. "mon-fri"
    tz: tzinfo
    grace: timedelta

    def trigger(self) -> CronTrigger:
        return CronTrigger(day_of_week=self.days, hour=self.hour, minute=self.minute,
                           timezone=self.tz)


def last_fire_at_or_before(schedule: DigestSchedule, now: datetime) -> datetime | None:
    """The latest scheduled time <= ``now`` within the past 8 days (None if none)."""
    trigger = schedule.trigger()
    cursor = now - timedelta(days=8)
    last: datetime | None = None
    for _ in range(16):  # at most one fire a day over 8 days
        nxt = trigger.get_next_fire_time(None, cursor)
        if nxt is None or nxt > now:
            break
        last = nxt
        cursor = nxt + timedelta(seconds=1)
    return last


def due_digest(schedule: DigestSchedule, now: datetime, sent_dates: set[date]) -> date | None:
    """The local date whose digest should go out now, or None.

    Due when the latest scheduled time is at most ``grace`` ago and no digest was
    recorded for its date. Later than that it is skipped: a digest at 3 pm about
    the morning is noise.
    """
    fire = last_fire_at_or_before(schedule, now)
    if fire is None or now - fire > schedule.grace:
        return None
    local_day = fire.astimezone(schedule.tz).date()
    return None if local_day in sent_dates else local_day
