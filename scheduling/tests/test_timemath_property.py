"""next_runs against a brute-force oracle that walks the local wall clock minute by minute.

The oracle shares no code with scheduling.timemath: it checks each wall-clock minute
against the spec with plain Python (no croniter), turns a matching minute into an instant
by trying both folds (earliest real occurrence wins) or, inside a gap, by stepping to the
first wall-clock minute that exists, then sorts and de-duplicates. ``after`` is drawn near
the DST transitions of 2024-2030 in zones with odd offsets and odd transition times.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from config.errors import ApplicationError
from scheduling.timemath import next_runs, slots_between, validate_schedule

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",  # changes at local midnight
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Tehran",  # +03:30, no DST since 2022
    "Pacific/Chatham",  # +12:45 / +13:45, changes at 02:45
    "America/St_Johns",  # -03:30 / -02:30
    "Europe/London",
    "UTC",
]
OTHER_ZONE = ZoneInfo("Asia/Kolkata")


@dataclass(frozen=True)
class Case:
    zone_name: str
    spec: dict[str, Any]
    day_ok: Callable[[date], bool]
    minute_ok: Callable[[int, int], bool]
    after: datetime
    count: int


# --- transitions to cluster around


@functools.cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """UTC instants in 2024-2030 at which the zone's UTC offset changes."""
    zone = ZoneInfo(zone_name)
    found = []
    day, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)
    offset = day.astimezone(zone).utcoffset()
    while day < end:
        later = day + timedelta(days=1)
        if later.astimezone(zone).utcoffset() != offset:
            low, high = day, later
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(high)
            offset = later.astimezone(zone).utcoffset()
        day = later
    return tuple(found)


def offset(moment: datetime) -> timedelta:
    result = moment.utcoffset()
    assert result is not None
    return result


# --- the oracle


def real_instant(wall: datetime, zone: ZoneInfo) -> datetime | None:
    """The earliest UTC instant whose local clock reads ``wall``, or None if the clock skips it."""
    hits = []
    for fold in (0, 1):
        candidate = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if candidate.astimezone(zone).replace(tzinfo=None) == wall:
            hits.append(candidate)
    return min(hits) if hits else None


def run_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """Contract rule: repeated -> first occurrence; skipped -> the first wall minute that exists."""
    probe = wall
    while (instant := real_instant(probe, zone)) is None:
        probe += timedelta(minutes=1)
    if probe != wall:
        event("a run time fell in a gap")
    elif instant.astimezone(zone).replace(fold=1).utcoffset() != instant.astimezone(zone).utcoffset():
        event("a run time occurred twice")
    return instant


def oracle(case: Case) -> list[datetime]:
    """The first ``count`` run instants after ``case.after``, by walking every local minute."""
    zone = ZoneInfo(case.zone_name)
    after = case.after.astimezone(UTC)
    day = after.astimezone(zone).date() - timedelta(days=2)
    found: set[datetime] = set()
    spare_days = 2  # keep walking a little once enough are found, in case a later wall maps earlier
    while spare_days > 0:
        if case.day_ok(day):
            midnight = datetime.combine(day, time())
            for minute_of_day in range(24 * 60):
                if case.minute_ok(*divmod(minute_of_day, 60)):
                    instant = run_instant(midnight + timedelta(minutes=minute_of_day), zone)
                    if instant > after:
                        found.add(instant)
        day += timedelta(days=1)
        if len(found) >= case.count:
            spare_days -= 1
    return sorted(found)[: case.count]


# --- strategies


@st.composite
def cron_field(draw: st.DrawFn, low: int, high: int, biased: list[int]) -> tuple[str, frozenset[int] | None]:
    """A simple cron field and the values it allows (None for "*")."""
    values = st.one_of(st.sampled_from(biased), st.integers(low, high))
    shape = draw(st.sampled_from(["star", "list", "range", "step"]))
    if shape == "star":
        return "*", None
    if shape == "list":
        chosen = sorted(draw(st.sets(values, min_size=1, max_size=4)))
        return ",".join(map(str, chosen)), frozenset(chosen)
    if shape == "range":
        # Increasing only: croniter reads "3-3" as the whole cycle (refused) and wraps "22-2".
        first, last = sorted(draw(st.sets(values, min_size=2, max_size=2)))
        return f"{first}-{last}", frozenset(range(first, last + 1))
    step = draw(st.integers(1, max(1, (high - low) // 2)))
    return f"*/{step}", frozenset(range(low, high + 1, step))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    zone_name = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(zone_name)
    points = transitions(zone_name)
    if points and draw(st.integers(0, 9)) > 0:
        transition = draw(st.sampled_from(points))
        # Mostly a little before the transition, so the next few runs straddle it.
        moment = transition + timedelta(minutes=draw(st.integers(-30 * 60, 4 * 60)))
        # A wall time near the jump, often inside the gap (spring) or the repeated stretch (autumn).
        before = (transition - timedelta(seconds=1)).astimezone(zone)
        jump = int((offset(transition.astimezone(zone)) - offset(before)).total_seconds()) // 60
        inside = st.integers(1, jump) if jump > 0 else st.integers(jump + 1, 0)
        aim = before.replace(tzinfo=None, second=0) + timedelta(minutes=draw(st.one_of(inside, st.integers(-75, 75))))
    else:
        moment = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 7 * 365 * 24 * 60)))
        aim = moment.astimezone(zone).replace(tzinfo=None)
    moment += timedelta(seconds=draw(st.sampled_from([0, 0, 0, 1, 30, 59])))
    # The same instant written in UTC, in the schedule's zone (fold=1 on a repeat), elsewhere.
    after = draw(st.sampled_from([moment, moment.astimezone(zone), moment.astimezone(OTHER_ZONE)]))
    count = draw(st.integers(1, 5))
    aimed = draw(st.booleans())

    kind = draw(st.sampled_from(["daily", "weekly", "monthly", "cron"]))
    if kind == "cron":
        minute_text, minutes = draw(cron_field(0, 59, [aim.minute, 0, 15, 30, 45]))
        hours: frozenset[int] | None
        if aimed:  # every chosen minute of the jump's hour: several slots share one gap
            hour_text, hours = str(aim.hour), frozenset({aim.hour})
        else:
            hour_text, hours = draw(cron_field(0, 23, [aim.hour, (aim.hour + 1) % 24, 0, 2, 23]))
        dom_text, doms = draw(st.one_of(st.just(("*", None)), cron_field(1, 31, [aim.day, 1, 29, 30, 31])))
        month_text, months = draw(st.one_of(st.just(("*", None)), cron_field(1, 12, [aim.month, 2])))
        dow_text, dows = draw(st.one_of(st.just(("*", None)), cron_field(0, 7, [aim.isoweekday() % 7, 0, 7])))
        spec: dict[str, Any] = {"kind": "cron", "cron": f"{minute_text} {hour_text} {dom_text} {month_text} {dow_text}"}
        sundays_as_zero = None if dows is None else frozenset(value % 7 for value in dows)

        def day_ok(day: date) -> bool:
            if months is not None and day.month not in months:
                return False
            dom_ok = doms is None or day.day in doms
            dow_ok = sundays_as_zero is None or day.isoweekday() % 7 in sundays_as_zero
            if doms is not None and sundays_as_zero is not None:
                return dom_ok or dow_ok  # classic cron: both restricted -> either may match
            return dom_ok and dow_ok

        def minute_ok(hour: int, minute: int) -> bool:
            return (hours is None or hour in hours) and (minutes is None or minute in minutes)

    else:
        if aimed:
            at_hour, at_minute = aim.hour, aim.minute
        else:
            at_hour = draw(st.one_of(st.sampled_from([0, 1, 2, 3, 23]), st.integers(0, 23)))
            at_minute = draw(st.one_of(st.sampled_from([0, 15, 30, 45, 59]), st.integers(0, 59)))
        spec = {"kind": kind, "time": f"{at_hour}:{at_minute:02d}"}

        def minute_ok(hour: int, minute: int) -> bool:
            return (hour, minute) == (at_hour, at_minute)

        if kind == "daily":

            def day_ok(day: date) -> bool:
                return True

        elif kind == "weekly":
            iso_day = aim.isoweekday() if aimed else draw(st.one_of(st.just(7), st.integers(1, 7)))
            spec["day_of_week"] = iso_day

            def day_ok(day: date) -> bool:
                return day.isoweekday() == iso_day

        else:
            wanted: int | str = aim.day if aimed else draw(st.one_of(st.integers(1, 31), st.just("last")))
            spec["day_of_month"] = wanted

            def day_ok(day: date) -> bool:
                last = calendar.monthrange(day.year, day.month)[1]
                return day.day == (last if wanted == "last" else min(wanted, last))

    return Case(zone_name, spec, day_ok, minute_ok, after, count)


def check(case: Case) -> None:
    try:
        validate_schedule(case.spec, case.zone_name)
    except ApplicationError:
        assume(False)  # e.g. a drawn cron that strict croniter calls never-firing
    zone = ZoneInfo(case.zone_name)
    runs = next_runs(case.spec, case.zone_name, case.after, case.count)
    expected = oracle(case)
    # isoformat carries the offset, so this also checks that a repeat is shown as its first occurrence.
    assert [run.isoformat() for run in runs] == [instant.astimezone(zone).isoformat() for instant in expected]
    assert all(run.tzinfo == zone for run in runs)


# --- the tests

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(cases())
def test_next_runs_matches_wall_clock_oracle(case: Case) -> None:
    check(case)


@pytest.mark.slow
@THOROUGH
@given(cases())
def test_next_runs_matches_wall_clock_oracle_thoroughly(case: Case) -> None:
    check(case)


@FAST
@given(cases(), st.integers(1, 72 * 60))
def test_slots_between_agrees_with_next_runs(case: Case, minutes: int) -> None:
    try:
        validate_schedule(case.spec, case.zone_name)
    except ApplicationError:
        assume(False)
    end = case.after + timedelta(minutes=minutes)
    slots = slots_between(case.spec, case.zone_name, case.after, end)
    upcoming = next_runs(case.spec, case.zone_name, case.after, count=len(slots) + 1)
    assert [slot.isoformat() for slot in slots] == [run.isoformat() for run in upcoming[: len(slots)]]
    assert upcoming[len(slots)].astimezone(UTC) > end.astimezone(UTC)
