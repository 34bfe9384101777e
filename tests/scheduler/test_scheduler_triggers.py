"""DailyTrigger across DST days: once per local day, whatever the clocks do.

Fire times are computed the way APScheduler does it: ``get_next_fire_time(previous, now)``
from a start instant, each next one from the previous.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from syncd.app.scheduler import DailyTrigger
from syncd.config.model import Schedule

UTC = timezone.utc
AMS = ZoneInfo("Europe/Amsterdam")


def fires(trigger, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time in [start, end), as the scheduler would walk them."""
    out, previous = [], None
    now = start
    while True:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or fire >= end:
            return out
        out.append(fire)
        previous = fire
        now = fire.astimezone(UTC) + timedelta(seconds=1)  # the scheduler runs it, moves on


def on_local_day(fire_times, day: date, tz=AMS) -> list[datetime]:
    return [f for f in fire_times if f.astimezone(tz).date() == day]


def around(day: date) -> tuple[datetime, datetime]:
    return (datetime.combine(day - timedelta(days=2), datetime.min.time(), UTC),
            datetime.combine(day + timedelta(days=3), datetime.min.time(), UTC))


def test_normal_day_runs_once_at_the_local_time():
    times = fires(DailyTrigger(2, 30, "Europe/Amsterdam"), *around(date(2026, 6, 10)))
    today = on_local_day(times, date(2026, 6, 10))
    assert today == [datetime(2026, 6, 10, 0, 30, tzinfo=UTC)]  # 02:30 CEST
    assert today[0].astimezone(AMS).strftime("%H:%M") == "02:30"


def test_skipped_hour_day_runs_once_moved_forward_by_the_gap():
    # 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    times = fires(DailyTrigger(2, 30, "Europe/Amsterdam"), *around(date(2026, 3, 29)))
    today = on_local_day(times, date(2026, 3, 29))
    assert today == [datetime(2026, 3, 29, 1, 30, tzinfo=UTC)]
    assert today[0].astimezone(AMS).strftime("%H:%M %Z") == "03:30 CEST"
    # the days around it run at 02:30 local
    for day in (date(2026, 3, 28), date(2026, 3, 30)):
        (fire,) = on_local_day(times, day)
        assert fire.astimezone(AMS).strftime("%H:%M") == "02:30"


def test_repeated_hour_day_runs_once_at_the_first_occurrence():
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    times = fires(DailyTrigger(2, 30, "Europe/Amsterdam"), *around(date(2026, 10, 25)))
    today = on_local_day(times, date(2026, 10, 25))
    assert today == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]  # 02:30 CEST
    (next_day,) = on_local_day(times, date(2026, 10, 26))
    assert next_day == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # 02:30 CET


def test_a_scheduler_between_the_two_occurrences_does_not_run_again():
    # syncd starts at 02:45 CEST, after the first 02:30: the second 02:30 is not a new run.
    trigger = DailyTrigger(2, 30, "Europe/Amsterdam")
    now = datetime(2026, 10, 25, 0, 45, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_apscheduler_cron_trigger_fires_twice_on_the_fall_back_day():
    """Why DailyTrigger exists: APScheduler 3.11's CronTrigger runs the repeated 02:30 twice.
    If this starts failing, upstream changed; DailyTrigger is still correct."""
    cron = CronTrigger(hour=2, minute=30, timezone=AMS)
    times = fires(cron, *around(date(2026, 10, 25)))
    assert len(on_local_day(times, date(2026, 10, 25))) == 2
    spring = fires(cron, *around(date(2026, 3, 29)))
    assert len(on_local_day(spring, date(2026, 3, 29))) == 1


@pytest.mark.parametrize("tz,at", [
    ("Europe/Amsterdam", (0, 0)), ("Europe/Amsterdam", (2, 0)), ("Europe/Amsterdam", (2, 30)),
    ("Europe/Amsterdam", (3, 0)), ("Europe/Amsterdam", (23, 59)),
    ("Europe/London", (1, 30)), ("America/New_York", (2, 15)),
    ("Australia/Lord_Howe", (2, 0)), ("Australia/Lord_Howe", (1, 45)),  # 30-minute shifts
    ("America/Santiago", (0, 0)),  # clocks change at midnight there
    ("UTC", (2, 30)),
])
def test_every_local_day_of_a_year_runs_exactly_once(tz, at):
    zone = ZoneInfo(tz)
    trigger = DailyTrigger(*at, tz)
    start = datetime(2026, 1, 1, tzinfo=zone).astimezone(UTC)
    end = datetime(2027, 1, 1, tzinfo=zone).astimezone(UTC)
    per_day = Counter(f.astimezone(zone).date() for f in fires(trigger, start, end))
    days = {date(2026, 1, 1) + timedelta(days=i) for i in range(365)}
    assert set(per_day) == days
    assert set(per_day.values()) == {1}
    spaced = sorted(fires(trigger, start, end))
    assert all(timedelta(hours=22) <= b - a <= timedelta(hours=26)
               for a, b in itertools.pairwise(spaced))


def test_days_restrict_the_weekdays():
    trigger = DailyTrigger.from_schedule(Schedule("06:00", "Europe/Amsterdam", ("mon", "fri")))
    start = datetime(2026, 3, 1, tzinfo=UTC)
    times = fires(trigger, start, start + timedelta(days=28))
    assert len(times) == 8
    assert {f.astimezone(AMS).strftime("%a %H:%M") for f in times} == {"Mon 06:00", "Fri 06:00"}


def test_next_fire_after_a_previous_one_may_be_in_the_past():
    """Like CronTrigger, the run after ``previous`` is returned even when ``now`` is later:
    that is how APScheduler sees misfired runs (and coalesces them)."""
    trigger = DailyTrigger(2, 30, "Europe/Amsterdam")
    previous = datetime(2026, 6, 10, 0, 30, tzinfo=UTC)
    now = datetime(2026, 6, 13, 12, 0, tzinfo=UTC)
    assert trigger.get_next_fire_time(previous, now) == datetime(2026, 6, 11, 0, 30, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == datetime(2026, 6, 14, 0, 30, tzinfo=UTC)


def test_a_fire_time_exactly_now_is_due():
    trigger = DailyTrigger(2, 30, "UTC")
    now = datetime(2026, 6, 10, 2, 30, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == now
