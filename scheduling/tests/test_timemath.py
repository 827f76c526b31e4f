"""Examples for the schedule time maths: kinds, DST gaps and folds, validation messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from config.errors import ApplicationError
from scheduling.timemath import next_run, next_runs, slots_between, to_cron, validate_schedule

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def iso(runs: list[datetime]) -> list[str]:
    """ISO strings carry the offset, so they tell the two occurrences of a repeated time apart."""
    return [run.isoformat() for run in runs]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def daily(time: str) -> dict[str, Any]:
    return {"kind": "daily", "time": time}


def cron(expression: str) -> dict[str, Any]:
    return {"kind": "cron", "cron": expression}


# --- Europe/Berlin: spring forward 2024-03-31 02:00 -> 03:00, fall back 2024-10-27 03:00 -> 02:00


def test_next_runs_berlin_gap_time_runs_when_the_clocks_jump() -> None:
    runs = next_runs(daily("02:30"), "Europe/Berlin", utc(2024, 3, 30, 12), count=3)
    assert iso(runs) == ["2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00", "2024-04-02T02:30:00+02:00"]


def test_next_runs_berlin_repeated_time_runs_once_at_first_occurrence() -> None:
    runs = next_runs(daily("02:30"), "Europe/Berlin", utc(2024, 10, 26, 12), count=3)
    assert iso(runs) == ["2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00", "2024-10-29T02:30:00+01:00"]


def test_next_runs_berlin_cron_fall_back_hour_is_not_run_twice() -> None:
    runs = next_runs(cron("*/15 * * * *"), "Europe/Berlin", utc(2024, 10, 27, 0, 0), count=6)
    assert iso(runs) == [
        "2024-10-27T02:15:00+02:00",
        "2024-10-27T02:30:00+02:00",
        "2024-10-27T02:45:00+02:00",
        "2024-10-27T03:00:00+01:00",
        "2024-10-27T03:15:00+01:00",
        "2024-10-27T03:30:00+01:00",
    ]


def test_next_runs_berlin_cron_gap_slots_collapse_to_one_run() -> None:
    runs = next_runs(cron("*/15 * * * *"), "Europe/Berlin", utc(2024, 3, 31, 0, 20), count=5)
    # 02:00, 02:15, 02:30 and 02:45 do not exist: together they run once, at 03:00 CEST.
    assert iso(runs) == [
        "2024-03-31T01:30:00+01:00",
        "2024-03-31T01:45:00+01:00",
        "2024-03-31T03:00:00+02:00",
        "2024-03-31T03:15:00+02:00",
        "2024-03-31T03:30:00+02:00",
    ]


def test_next_runs_after_the_gap_run_is_strict() -> None:
    gap_run = datetime(2024, 3, 31, 3, 0, tzinfo=BERLIN)
    assert iso(next_runs(daily("02:30"), "Europe/Berlin", gap_run, count=1)) == ["2024-04-01T02:30:00+02:00"]


def test_next_runs_after_second_occurrence_in_same_zone_is_compared_as_an_instant() -> None:
    # 02:30 CET (fold=1) is an hour after 02:30 CEST; with the same ZoneInfo Python would
    # compare the two by wall clock alone, so 02:45 CEST must not come back.
    second = datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=BERLIN)
    runs = next_runs(cron("*/15 * * * *"), "Europe/Berlin", second, count=2)
    assert iso(runs) == ["2024-10-27T03:00:00+01:00", "2024-10-27T03:15:00+01:00"]


def test_next_runs_after_first_occurrence_is_strict() -> None:
    first = datetime(2024, 10, 27, 2, 30, tzinfo=BERLIN)
    runs = next_runs(cron("*/15 * * * *"), "Europe/Berlin", first, count=2)
    assert iso(runs) == ["2024-10-27T02:45:00+02:00", "2024-10-27T03:00:00+01:00"]


# --- America/New_York: spring forward 2024-03-10 02:00 -> 03:00, fall back 2024-11-03 02:00 -> 01:00


def test_next_runs_new_york_repeated_time_runs_once() -> None:
    runs = next_runs(daily("01:30"), "America/New_York", utc(2024, 11, 2, 12), count=3)
    assert iso(runs) == ["2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00", "2024-11-05T01:30:00-05:00"]


def test_next_runs_new_york_gap_time_runs_at_three() -> None:
    runs = next_runs(daily("02:30"), "America/New_York", utc(2024, 3, 9, 12), count=2)
    assert iso(runs) == ["2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"]


def test_next_runs_new_york_weekly_sunday_in_gap() -> None:
    spec = {"kind": "weekly", "time": "02:00", "day_of_week": 7}
    runs = next_runs(spec, "America/New_York", utc(2024, 3, 5), count=3)
    assert iso(runs) == ["2024-03-10T03:00:00-04:00", "2024-03-17T02:00:00-04:00", "2024-03-24T02:00:00-04:00"]


def test_next_runs_new_york_business_hours_cron_in_local_time() -> None:
    friday_evening = datetime(2024, 3, 8, 17, 50, tzinfo=NEW_YORK)
    runs = next_runs(cron("*/15 9-17 * * 1-5"), "America/New_York", friday_evening, count=2)
    # Monday is the first day after the spring-forward Sunday: the local clock decides.
    assert iso(runs) == ["2024-03-11T09:00:00-04:00", "2024-03-11T09:15:00-04:00"]


# --- Australia/Lord_Howe: 30-minute DST; +10:30 <-> +11:00 at 02:00 local


def test_next_runs_lord_howe_half_hour_gap() -> None:
    # 2024-10-06: 02:00 -> 02:30, so 02:15 does not exist.
    runs = next_runs(daily("02:15"), "Australia/Lord_Howe", utc(2024, 10, 5), count=2)
    assert iso(runs) == ["2024-10-06T02:30:00+11:00", "2024-10-07T02:15:00+11:00"]


def test_next_runs_lord_howe_half_hour_fold() -> None:
    # 2025-04-06: 02:00 -> 01:30, so 01:30-01:59 happens twice.
    runs = next_runs(daily("01:45"), "Australia/Lord_Howe", utc(2025, 4, 5), count=2)
    assert iso(runs) == ["2025-04-06T01:45:00+11:00", "2025-04-07T01:45:00+10:30"]


def test_next_runs_lord_howe_cron_over_the_fold() -> None:
    runs = next_runs(cron("*/20 1-2 * * *"), "Australia/Lord_Howe", utc(2025, 4, 5, 14, 10), count=6)
    assert iso(runs) == [
        "2025-04-06T01:20:00+11:00",
        "2025-04-06T01:40:00+11:00",
        "2025-04-06T02:00:00+10:30",
        "2025-04-06T02:20:00+10:30",
        "2025-04-06T02:40:00+10:30",
        "2025-04-07T01:00:00+10:30",
    ]


# --- Europe/London: 2025-03-30 01:00 -> 02:00, 2025-10-26 02:00 -> 01:00


def test_next_runs_london_gap_and_fold() -> None:
    spring = next_runs(daily("01:30"), "Europe/London", utc(2025, 3, 29, 12), count=2)
    autumn = next_runs(daily("01:30"), "Europe/London", utc(2025, 10, 25, 12), count=2)
    assert iso(spring) == ["2025-03-30T02:00:00+01:00", "2025-03-31T01:30:00+01:00"]
    assert iso(autumn) == ["2025-10-26T01:30:00+01:00", "2025-10-27T01:30:00+00:00"]


def test_next_runs_london_contract_example_last_day() -> None:
    spec = {"kind": "monthly", "time": "08:00", "day_of_month": "last"}
    runs = next_runs(spec, "Europe/London", utc(2025, 1, 31, 8), count=3)
    assert iso(runs) == ["2025-02-28T08:00:00+00:00", "2025-03-31T08:00:00+01:00", "2025-04-30T08:00:00+01:00"]


# --- Monthly clamping


def monthly(day: int | str, time: str = "08:00") -> dict[str, Any]:
    return {"kind": "monthly", "time": time, "day_of_month": day}


def test_next_runs_monthly_31_clamps_in_leap_year() -> None:
    runs = next_runs(monthly(31), "UTC", utc(2024, 1, 1), count=5)
    assert [run.date().isoformat() for run in runs] == [
        "2024-01-31",
        "2024-02-29",
        "2024-03-31",
        "2024-04-30",
        "2024-05-31",
    ]


@pytest.mark.parametrize(
    ("day", "year", "expected"),
    [(29, 2023, 28), (29, 2024, 29), (30, 2023, 28), (31, 2100, 28), (31, 2000, 29), ("last", 2024, 29)],
)
def test_next_run_monthly_february(day: int | str, year: int, expected: int) -> None:
    run = next_run(monthly(day), "UTC", utc(year, 2, 1))
    assert (run.month, run.day) == (2, expected)


def test_next_runs_monthly_last_equals_day_31() -> None:
    after = utc(2023, 6, 15)
    assert next_runs(monthly("last"), "Europe/Berlin", after, 24) == next_runs(monthly(31), "Europe/Berlin", after, 24)


def test_next_runs_monthly_after_is_strict() -> None:
    run_time = datetime(2024, 4, 30, 8, 0, tzinfo=BERLIN)
    assert iso(next_runs(monthly(31), "Europe/Berlin", run_time, 1)) == ["2024-05-31T08:00:00+02:00"]
    just_before = run_time - timedelta(microseconds=1)
    assert iso(next_runs(monthly(31), "Europe/Berlin", just_before, 1)) == ["2024-04-30T08:00:00+02:00"]


def test_next_runs_monthly_in_gap() -> None:
    # Berlin's last Sunday of March 2024 is also the 31st.
    runs = next_runs(monthly("last", "02:30"), "Europe/Berlin", utc(2024, 3, 1), count=2)
    assert iso(runs) == ["2024-03-31T03:00:00+02:00", "2024-04-30T02:30:00+02:00"]


# --- Weekly


@pytest.mark.parametrize(
    ("iso_day", "date"), [(1, "2024-05-06"), (5, "2024-05-10"), (6, "2024-05-11"), (7, "2024-05-12")]
)
def test_next_run_weekly_iso_weekday(iso_day: int, date: str) -> None:
    spec = {"kind": "weekly", "time": "09:00", "day_of_week": iso_day}
    run = next_run(spec, "Europe/Berlin", utc(2024, 5, 5, 12))  # a Sunday noon
    assert run.date().isoformat() == date
    assert run.isoweekday() == iso_day


def test_next_run_weekly_exact_time_is_not_returned() -> None:
    spec = {"kind": "weekly", "time": "09:00", "day_of_week": 7}
    sunday = datetime(2024, 5, 12, 9, 0, tzinfo=BERLIN)
    assert next_run(spec, "Europe/Berlin", sunday) == sunday + timedelta(days=7)


# --- General behaviour


def test_next_runs_returns_the_schedule_zone_whatever_the_zone_of_after() -> None:
    after = datetime(2024, 6, 1, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    runs = next_runs(daily("08:00"), "Europe/Berlin", after, count=2)
    assert all(run.tzinfo == BERLIN for run in runs)
    assert iso(runs) == ["2024-06-01T08:00:00+02:00", "2024-06-02T08:00:00+02:00"]


def test_next_run_is_first_of_next_runs() -> None:
    after = utc(2024, 10, 27, 0, 7)
    assert (
        next_run(cron("*/15 * * * *"), "Europe/Berlin", after)
        == next_runs(cron("*/15 * * * *"), "Europe/Berlin", after)[0]
    )


def test_next_runs_count() -> None:
    assert next_runs(daily("08:00"), "UTC", utc(2024, 1, 1), count=0) == []
    assert len(next_runs(daily("08:00"), "UTC", utc(2024, 1, 1))) == 5


def test_next_runs_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_runs(daily("08:00"), "UTC", datetime(2024, 1, 1))


def test_next_runs_validates_the_spec() -> None:
    with pytest.raises(ApplicationError) as caught:
        next_runs(cron("0 0 31 2 *"), "UTC", utc(2024, 1, 1))
    assert caught.value.field == "schedule.cron"


def test_next_runs_cron_day_of_month_or_day_of_week() -> None:
    # Classic cron: when both day fields are restricted, either one matching is enough.
    runs = next_runs(cron("0 8 1 * 1"), "UTC", utc(2024, 4, 28), count=3)
    assert [run.date().isoformat() for run in runs] == ["2024-04-29", "2024-05-01", "2024-05-06"]


def test_slots_between_is_half_open() -> None:
    start = datetime(2024, 1, 1, 8, 0, tzinfo=BERLIN)
    slots = slots_between(daily("08:00"), "Europe/Berlin", start, start + timedelta(days=3))
    assert iso(slots) == ["2024-01-02T08:00:00+01:00", "2024-01-03T08:00:00+01:00", "2024-01-04T08:00:00+01:00"]


def test_slots_between_over_fall_back_counts_each_wall_slot_once() -> None:
    slots = slots_between(cron("0 * * * *"), "Europe/Berlin", utc(2024, 10, 26, 22), utc(2024, 10, 27, 4))
    # Six hours of real time hold only five hourly wall-clock slots: 02:00 happens once.
    assert iso(slots) == [
        "2024-10-27T01:00:00+02:00",
        "2024-10-27T02:00:00+02:00",
        "2024-10-27T03:00:00+01:00",
        "2024-10-27T04:00:00+01:00",
        "2024-10-27T05:00:00+01:00",
    ]


def test_slots_between_empty_and_reversed() -> None:
    assert slots_between(daily("08:00"), "UTC", utc(2024, 1, 2), utc(2024, 1, 1)) == []
    assert slots_between(daily("08:00"), "UTC", utc(2024, 1, 1, 9), utc(2024, 1, 2, 7)) == []


def test_slots_between_keeps_the_latest_slots_when_capped() -> None:
    start, end = utc(2024, 1, 1), utc(2024, 3, 1)
    slots = slots_between(cron("* * * * *"), "UTC", start, end, limit=500)
    assert len(slots) == 500
    assert slots[-1] == end
    assert slots[0] == end - timedelta(minutes=499)


def test_slots_between_long_outage_of_monthly_schedule() -> None:
    slots = slots_between(monthly("last"), "Europe/London", utc(2020, 1, 1), utc(2025, 1, 1))
    assert len(slots) == 60
    assert slots[-1].isoformat() == "2024-12-31T08:00:00+00:00"


# --- to_cron


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (daily("8:05"), "5 8 * * *"),
        ({"kind": "weekly", "time": "08:00", "day_of_week": 1}, "0 8 * * 1"),
        ({"kind": "weekly", "time": "08:00", "day_of_week": 6}, "0 8 * * 6"),
        ({"kind": "weekly", "time": "23:59", "day_of_week": 7}, "59 23 * * 0"),
        (cron("  */15   9-17 * *\t1-5 "), "*/15 9-17 * * 1-5"),
    ],
)
def test_to_cron(spec: dict[str, Any], expected: str) -> None:
    assert to_cron(spec) == expected


def test_to_cron_monthly_has_no_single_expression() -> None:
    with pytest.raises(ValueError, match="monthly"):
        to_cron(monthly(31))


# --- validate_schedule: normalisation


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (daily("8:00"), daily("08:00")),
        ({"kind": "daily", "time": " 23:59 ", "day_of_week": 3}, daily("23:59")),
        ({"kind": "weekly", "time": "0:00", "day_of_week": "7"}, {"kind": "weekly", "time": "00:00", "day_of_week": 7}),
        ({"kind": "monthly", "time": "08:00", "day_of_month": "31"}, monthly(31)),
        ({"kind": "monthly", "time": "08:00", "day_of_month": "Last"}, monthly("last")),
        (cron(" 0  8 * * mon-fri "), cron("0 8 * * mon-fri")),
        (cron("0 0 29 2 *"), cron("0 0 29 2 *")),
    ],
)
def test_validate_schedule_normalises(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    assert validate_schedule(spec, "Europe/Berlin") == expected


# --- validate_schedule: refusals

# The part of the schedule each refusal (by its message) is about; every cron refusal is on schedule.cron.
REFUSAL_FIELD = {
    "kind": "schedule",  # not an object at all: the whole schedule is wrong
    "daily, weekly, monthly or cron": "schedule.kind",
    "HH:MM": "schedule.time",
    "00:00 to 23:59": "schedule.time",
    "1 (Monday) to 7 (Sunday)": "schedule.day_of_week",
    '1 to 31, or "last"': "schedule.day_of_month",
}


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (None, "kind"),
        ({}, "daily, weekly, monthly or cron"),
        ({"kind": "hourly", "time": "08:00"}, "daily, weekly, monthly or cron"),
        ({"kind": ["daily"]}, "daily, weekly, monthly or cron"),
        ({"kind": "daily"}, "HH:MM"),
        (daily(""), "HH:MM"),
        ({"kind": "daily", "time": 8}, "HH:MM"),
        (daily("8"), "HH:MM"),
        (daily("08:00:00"), "HH:MM"),
        (daily("24:00"), "00:00 to 23:59"),
        (daily("08:60"), "00:00 to 23:59"),
        (daily("8:5"), "HH:MM"),
        (daily("-1:00"), "HH:MM"),
        (daily("ab:cd"), "HH:MM"),
        (daily("٨:٠٠"), "HH:MM"),
        ({"kind": "weekly", "time": "08:00"}, "1 (Monday) to 7 (Sunday)"),
        ({"kind": "weekly", "time": "08:00", "day_of_week": 0}, "1 (Monday) to 7 (Sunday)"),
        ({"kind": "weekly", "time": "08:00", "day_of_week": 8}, "1 (Monday) to 7 (Sunday)"),
        ({"kind": "weekly", "time": "08:00", "day_of_week": "Monday"}, "1 (Monday) to 7 (Sunday)"),
        ({"kind": "weekly", "time": "08:00", "day_of_week": True}, "1 (Monday) to 7 (Sunday)"),
        ({"kind": "weekly", "time": "08:00", "day_of_week": 1.0}, "1 (Monday) to 7 (Sunday)"),
        ({"kind": "weekly", "time": "8", "day_of_week": 1}, "HH:MM"),
        ({"kind": "monthly", "time": "08:00"}, '1 to 31, or "last"'),
        (monthly(0), '1 to 31, or "last"'),
        (monthly(32), '1 to 31, or "last"'),
        (monthly(-1), '1 to 31, or "last"'),
        (monthly("first"), '1 to 31, or "last"'),
        (monthly(31.0), '1 to 31, or "last"'),  # type: ignore[arg-type]
        (monthly(True), '1 to 31, or "last"'),
        ({"kind": "cron"}, "exactly five fields"),
        ({"kind": "cron", "cron": 15}, "exactly five fields"),
        (cron(""), "exactly five fields"),
        (cron("* * * *"), "exactly five fields"),
        (cron("0 * * * * *"), "exactly five fields"),
        (cron("@daily"), "exactly five fields"),
        (cron("*/0 * * * *"), "at least 1"),
        (cron("60 * * * *"), "minute 0-59"),
        (cron("* 24 * * *"), "hour 0-23"),
        (cron("* * 0 * *"), "day of month 1-31"),
        (cron("* * 32 * *"), "day of month 1-31"),
        (cron("* * * 13 *"), "month 1-12"),
        (cron("* * * * 8"), "day of week 0-7"),
        (cron("abc * * * *"), "not a valid cron expression"),
        (cron("0 0 31 2 *"), "never runs"),
        (cron("0 0 30 2 *"), "never runs"),
        (cron("0 0 31 4,6,9,11 *"), "never runs"),
        (cron("* 3-3 * * *"), "starts and ends on the same value"),
        (cron("0 0 * * sun-SUN"), "starts and ends on the same value"),
        (cron("0 0 * * 7-0"), "starts and ends on the same value"),
        (cron("0 0 1,5-5/2 * *"), "starts and ends on the same value"),
        (cron("0 0 */2 * */1"), "one of them matches every day"),
        (cron("0 0 1 * 0-6"), "one of them matches every day"),
        (cron("0 0 1-31 * 1"), "one of them matches every day"),
        (cron("0 0 1 * sun-sat"), "one of them matches every day"),
        (cron("H * * * *"), "hashed (H) or random (R)"),
        (cron("0 R * * *"), "hashed (H) or random (R)"),
    ],
)
def test_validate_schedule_refuses(spec: Any, says: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        validate_schedule(spec, "Europe/Berlin")
    field = "schedule.cron" if isinstance(spec, dict) and spec.get("kind") == "cron" else REFUSAL_FIELD[says]
    assert caught.value.field == field
    assert says in caught.value.message
    *parents, leaf = field.split(".")
    expected: dict[str, Any] = (
        {"schedule": {leaf: [caught.value.message]}} if parents else {"schedule": [caught.value.message]}
    )
    assert caught.value.as_dict() == expected


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "", "   ", None, 3, "europe/berlin", "localtime", "../etc"])
def test_validate_schedule_refuses_unknown_timezone(timezone: Any) -> None:
    with pytest.raises(ApplicationError) as caught:
        validate_schedule(daily("08:00"), timezone)
    assert caught.value.field == "timezone"
    assert "IANA" in caught.value.message
    assert caught.value.as_dict() == {"timezone": [caught.value.message]}


@pytest.mark.parametrize("timezone", ["UTC", "Europe/London", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham"])
def test_validate_schedule_accepts_iana_zones(timezone: str) -> None:
    assert validate_schedule(daily("08:00"), timezone) == daily("08:00")


def test_validate_schedule_cron_names_with_h_and_r_are_fine() -> None:
    assert validate_schedule(cron("0 8 * mar-dec thu,fri"), "UTC")["cron"] == "0 8 * mar-dec thu,fri"


def test_next_runs_cron_range_wraps_past_midnight() -> None:
    runs = next_runs(cron("0 22-1 * * *"), "UTC", utc(2024, 1, 1, 12), count=5)
    assert [run.hour for run in runs] == [22, 23, 0, 1, 22]


def test_validate_schedule_accepts_whole_week_range() -> None:
    assert validate_schedule(cron("0 8 * * 0-7"), "UTC") == cron("0 8 * * 0-7")
