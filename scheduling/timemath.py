"""Next-run maths for report schedules: rules read on the schedule's local wall clock, DST-safe.

A schedule says *when on the local wall clock* it runs ("08:00 every day in Europe/London").
Every kind is evaluated the same way: list the matching naive local wall-clock times in
order (croniter on naive datetimes for daily/weekly/cron, plain calendar arithmetic for
monthly), then turn each wall time into one instant with the contract's DST rules:

- a wall time inside a spring-forward gap runs at the first instant after the gap (the
  instant the clocks jumped to, e.g. 03:00 CEST for 02:30 on Berlin's last Sunday of March);
- a wall time that occurs twice (fall-back) runs once, at its first occurrence (fold=0).

Several gap times can collapse onto the same instant; the mapping never goes backwards,
so keeping only instants strictly later than the previous one yields a strictly increasing,
duplicate-free list. croniter's own tz-aware mode is not used: it fires twice on fall-back.
"""

from __future__ import annotations

import calendar
import re
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter  # type: ignore[import-untyped]  # no py.typed, no stubs

from config.errors import ApplicationError

KINDS = ("daily", "weekly", "monthly", "cron")
MAX_SLOTS = 10_000
# A cron expression must fire at least this often; 29 February still passes.
MAX_YEARS_BETWEEN_RUNS = 5

_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})", re.ASCII)
# Hashed (H) and random (R) fields depend on an id or on chance; names like THU or MAR are fine.
_HASH_OR_RANDOM_RE = re.compile(r"\b[HR]\b", re.IGNORECASE)
# Present in the zoneinfo folder on some systems but not zones a user means.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})

_TIME_HELP = 'The time must be written "HH:MM" on a 24-hour clock, from 00:00 to 23:59.'
_DAY_OF_WEEK_HELP = "day_of_week must be a whole number from 1 (Monday) to 7 (Sunday)."
_DAY_OF_MONTH_HELP = 'day_of_month must be a whole number from 1 to 31, or "last".'
_CRON_FIELDS_HELP = (
    "A cron expression needs exactly five fields separated by spaces: "
    'minute, hour, day of month, month and day of week (for example "*/15 9-17 * * 1-5").'
)
_CRON_SYNTAX_HELP = (
    "is not a valid cron expression. Allowed values: minute 0-59, hour 0-23, day of month 1-31, "
    "month 1-12 or jan-dec, day of week 0-7 (0 and 7 are Sunday) or sun-sat; "
    'use "*", lists "1,15", ranges "9-17" and steps "*/15" (the step must be at least 1).'
)


def validate_schedule(spec: dict[str, Any], timezone: str) -> dict[str, Any]:
    """Check a schedule body and its timezone; return the normalised spec or raise ApplicationError."""
    get_zone(timezone)
    return _normalise(spec)


def get_zone(timezone: str) -> ZoneInfo:
    """The ZoneInfo for an IANA timezone name, or ApplicationError(field="timezone")."""
    if not isinstance(timezone, str) or not timezone.strip():
        raise ApplicationError("The timezone must be an IANA name such as Europe/London.", field="timezone")
    names = _iana_names()
    message = f'"{timezone}" is not a known IANA timezone; use a name such as Europe/London or America/New_York.'
    # An empty list means the system lists no zones; ZoneInfo itself is then the judge.
    if (names and timezone not in names) or timezone in _NOT_ZONES:
        raise ApplicationError(message, field="timezone")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApplicationError(message, field="timezone") from exc


def to_cron(spec: dict[str, Any]) -> str:
    """The five-field cron expression of a daily, weekly or cron schedule."""
    return _cron_of(_normalise(spec))


def _cron_of(normal: dict[str, Any]) -> str:
    """The cron expression of an already normalised daily, weekly or cron spec."""
    kind = normal["kind"]
    if kind == "cron":
        return str(normal["cron"])
    if kind == "monthly":
        # Day 29-31 clamps to the last day of shorter months, which no single cron expression says.
        raise ValueError("A monthly schedule has no single cron expression.")
    hour, minute = _hour_minute(normal["time"])
    if kind == "daily":
        return f"{minute} {hour} * * *"
    return f"{minute} {hour} * * {normal['day_of_week'] % 7}"  # ISO 7 (Sunday) is cron's 0


def next_runs(spec: dict[str, Any], timezone: str, after: datetime, count: int = 5) -> list[datetime]:
    """The first ``count`` run instants strictly after ``after``, in the schedule's zone."""
    if count < 0:
        raise ValueError("count must not be negative.")
    zone = get_zone(timezone)
    return list(islice(_runs(_normalise(spec), zone, after), count))


def next_run(spec: dict[str, Any], timezone: str, after: datetime) -> datetime:
    """The first run instant strictly after ``after``, in the schedule's zone."""
    return next_runs(spec, timezone, after, count=1)[0]


def slots_between(
    spec: dict[str, Any], timezone: str, start: datetime, end: datetime, *, limit: int = MAX_SLOTS
) -> list[datetime]:
    """The run instants in (start, end], oldest first; at most the latest ``limit`` of them.

    Used to coalesce missed slots: the last item is the slot to run and the length is how
    many slots it stands for (capped at ``limit``). When there are more than ``limit`` slots
    the earliest are dropped, so the latest slot is always right.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1.")
    zone = get_zone(timezone)
    normal = _normalise(spec)
    start_utc, end_utc = _utc(start), _utc(end)
    if end_utc <= start_utc:
        return []
    # Walk back from ``end`` in growing windows so a long outage of a minutely schedule costs
    # about as much as its latest ``limit`` slots, not as much as every slot since ``start``.
    window = timedelta(days=1)
    while True:
        low = start_utc if window >= end_utc - start_utc else end_utc - window
        slots: deque[datetime] = deque(maxlen=limit)
        for instant in _runs(normal, zone, low):
            if instant.astimezone(UTC) > end_utc:
                break
            slots.append(instant)
        if len(slots) == limit or low == start_utc:
            return list(slots)
        window *= 4


def _runs(normal: dict[str, Any], zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Run instants strictly after ``after``, strictly increasing, each once."""
    after_utc = _utc(after)
    # No wall time at or before after's own wall time can map to an instant later than
    # ``after`` (the mapping never goes backwards), so the walk starts there.
    start = after_utc.astimezone(zone).replace(tzinfo=None, fold=0)
    latest = after_utc
    for wall in _walls(normal, start):
        instant = _instant(wall, zone)
        # Compare in UTC: aware datetimes sharing one ZoneInfo compare by wall clock, ignoring fold.
        instant_utc = instant.astimezone(UTC)
        if instant_utc > latest:  # also drops gap times that collapsed onto the previous instant
            latest = instant_utc
            yield instant


def _walls(normal: dict[str, Any], start: datetime) -> Iterator[datetime]:
    """Naive local wall-clock run times strictly after naive ``start``, in order."""
    if normal["kind"] == "monthly":
        yield from _monthly_walls(normal, start)
        return
    # Naive datetimes: croniter then counts plain wall-clock minutes, with no DST of its own.
    cron = croniter(_cron_of(normal), start)
    while True:
        yield cron.get_next(datetime)


def _monthly_walls(normal: dict[str, Any], start: datetime) -> Iterator[datetime]:
    """Monthly wall times after ``start``: day 29-31 (or "last") lands on shorter months' last day."""
    hour, minute = _hour_minute(normal["time"])
    wanted = normal["day_of_month"]
    year, month = start.year, start.month
    while True:
        last_day = calendar.monthrange(year, month)[1]
        day = last_day if wanted == "last" else min(wanted, last_day)
        wall = datetime(year, month, day, hour, minute)
        if wall > start:
            yield wall
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a local wall time runs at: first occurrence if repeated, gap end if skipped."""
    aware = wall.replace(tzinfo=zone, fold=0)  # fold=0 is the first of two occurrences
    back = aware.astimezone(UTC).astimezone(zone)
    if back.replace(tzinfo=None) == wall:
        return back
    # The wall clock changed on the round trip, so ``wall`` lies in a gap. Read with the
    # offset from before the jump it lands after the transition, read with the offset
    # from after it lands before; bisect between the two for the transition instant
    # (tzdata transitions fall on whole seconds).
    readings = sorted((aware.astimezone(UTC), aware.replace(fold=1).astimezone(UTC)))
    low, high = int(readings[0].timestamp()), int(readings[1].timestamp())
    before = datetime.fromtimestamp(low, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, zone)


def _normalise(spec: Any) -> dict[str, Any]:
    """Check a schedule spec (without its timezone) and return its canonical form."""
    if not isinstance(spec, dict):
        # Not a rule at all: the error is on the schedule as a whole, not on one of its parts.
        raise ApplicationError('The schedule must be an object with a "kind".', field="schedule")
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise _schedule_error("kind", "The schedule kind must be one of daily, weekly, monthly or cron.")
    if kind == "cron":
        return {"kind": kind, "cron": _normalise_cron(spec.get("cron"))}
    normal: dict[str, Any] = {"kind": kind, "time": _normalise_time(spec.get("time"))}
    if kind == "weekly":
        normal["day_of_week"] = _whole_number(spec.get("day_of_week"), 1, 7, "day_of_week", _DAY_OF_WEEK_HELP)
    elif kind == "monthly":
        day = spec.get("day_of_month")
        if isinstance(day, str) and day.strip().lower() == "last":
            normal["day_of_month"] = "last"
        else:
            normal["day_of_month"] = _whole_number(day, 1, 31, "day_of_month", _DAY_OF_MONTH_HELP)
    return normal


def _normalise_time(value: Any) -> str:
    """Normalise "8:00" to "08:00"; anything that is not a 24-hour HH:MM is refused."""
    match = _TIME_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise _schedule_error("time", _TIME_HELP)
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        raise _schedule_error("time", _TIME_HELP)
    return f"{hour:02d}:{minute:02d}"


def _whole_number(value: Any, low: int, high: int, part: str, help_text: str) -> int:
    """An int (or a string of digits) within [low, high]; bools and floats are refused."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _schedule_error(part, help_text)
    return value


def _normalise_cron(value: Any) -> str:
    """A five-field cron expression that parses and fires at least every few years."""
    if not isinstance(value, str):
        raise _schedule_error("cron", _CRON_FIELDS_HELP)
    fields = value.split()
    if len(fields) != 5:
        raise _schedule_error("cron", _CRON_FIELDS_HELP)
    expression = " ".join(fields)
    if any(_HASH_OR_RANDOM_RE.search(field) for field in fields):
        raise _schedule_error("cron", f'"{expression}" uses hashed (H) or random (R) values, which are not supported.')
    for index, field in enumerate(fields):
        for part in field.split(","):
            if _is_equal_range(part, day_of_week=index == 4):
                raise _schedule_error(
                    "cron",
                    f'"{expression}" has a range that starts and ends on the same value ("{part}"); '
                    "write the single value instead, for example 3 rather than 3-3.",
                )
    never = (
        f'"{expression}" never runs (for example, it asks for 31 February); '
        f"choose days that exist at least once every {MAX_YEARS_BETWEEN_RUNS} years."
    )
    try:
        if not croniter.is_valid(expression):
            raise _schedule_error("cron", f'"{expression}" {_CRON_SYNTAX_HELP}')
        _check_day_fields(expression, fields)
        # is_valid(strict=True) also refuses day/month pairs that can never meet (31 February);
        # the look ahead from today catches what strict parsing lets through.
        if not croniter.is_valid(expression, strict=True):
            raise _schedule_error("cron", never)
        reference = datetime.now(UTC).replace(tzinfo=None)
        croniter(expression, reference, max_years_between_matches=MAX_YEARS_BETWEEN_RUNS).get_next(datetime)
    except ApplicationError:
        raise
    except (CroniterError, ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        # CroniterBadDateError (a CroniterError) is croniter's "no match within the look ahead".
        raise _schedule_error("cron", never) from exc
    return expression


def _check_day_fields(expression: str, fields: list[str]) -> None:
    """Refuse a day-of-month and day-of-week pair where one side restricts nothing.

    With both day fields set, cron runs on days matching either. When one of them still
    covers every day ("*/1", "0-6", "1-31") cron flavours disagree: Vixie cron treats a
    field starting with "*" as unset (days must match the other), croniter sometimes ORs
    (every day) and sometimes ANDs. Refusing the pair keeps the meaning unambiguous.
    """
    if fields[2] in ("*", "?") or fields[4] in ("*", "?"):
        return
    expanded, _ = croniter.expand(expression)
    day_of_month, day_of_week = expanded[2], expanded[4]
    if "*" in day_of_month or "*" in day_of_week or {*range(1, 32)} <= {*day_of_month} or {*range(7)} <= {*day_of_week}:
        raise _schedule_error(
            "cron",
            f'"{expression}" sets both day of month and day of week, but one of them matches every day; '
            "write * for that field.",
        )


def _is_equal_range(part: str, *, day_of_week: bool) -> bool:
    """Whether a cron list item is a range like "3-3", "mon-MON" or (day of week) "7-0".

    croniter 7 reads such a range as the whole cycle ("* 3-3 * * *" runs every hour), where
    classic cron means the single value; refusing it keeps both readings from being needed.
    """
    bounds = part.split("/", 1)[0].lower().split("-")
    if len(bounds) != 2:
        return False
    low, high = bounds
    if low.isdigit() and high.isdigit():
        return int(low) == int(high) or (day_of_week and int(low) == 7 and int(high) == 0)
    return low == high


def _hour_minute(time: str) -> tuple[int, int]:
    """The hour and minute of a normalised "HH:MM"."""
    hour, minute = time.split(":")
    return int(hour), int(minute)


def _utc(moment: datetime) -> datetime:
    """An aware datetime in UTC; naive datetimes are a programming error."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("Schedule maths needs timezone-aware datetimes.")
    return moment.astimezone(UTC)


def _schedule_error(part: str, message: str) -> ApplicationError:
    """An ApplicationError keyed to one part of the schedule (``schedule.time``, ``schedule.cron``…)."""
    return ApplicationError(message, field=f"schedule.{part}")


@lru_cache(maxsize=1)
def _iana_names() -> frozenset[str]:
    """The IANA zone names this system knows (read once: it walks the zoneinfo folder)."""
    return frozenset(available_timezones())
