"""Datetimes shown as ISO text in the organization's zone, made from SQLite's stored text
(``exports.local_time``), are ``astimezone(zone).isoformat()`` to the character, and a CSV
or JSONL export made so is the export made from the datetimes, byte for byte."""

from __future__ import annotations

import datetime as dt
import io
import random
import zoneinfo

import pytest
from django.db import connection

from cases.tests.factories import CaseFactory, InvestigationFactory, RIUFactory
from exports.filters import cases_filtered
from exports.local_time import LocalIsoText
from exports.rows import RowPlan
from exports.writers.csv_writer import CsvWriter
from exports.writers.jsonl_writer import JsonlWriter
from organizations.models import Organization
from organizations.tests.factories import OrganizationFactory
from tagging.models import TagSlot
from tagging.tests.factories import tag_slots

# Whole-hour offsets with DST (both hemispheres, Dublin's "negative" summer time,
# Casablanca's Ramadan shifts), fractions of an hour (St. John's, Kathmandu, Chatham's
# +12:45/+13:45, Lord Howe's half-hour DST), and UTC.
ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Europe/Dublin",
    "Australia/Sydney",
    "Africa/Casablanca",
    "America/St_Johns",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
]
WHOLE_HOURS = {"UTC", "America/New_York", "Europe/London", "Europe/Dublin", "Australia/Sydney", "Africa/Casablanca"}


def stored(value: dt.datetime) -> str:
    """What Django writes in a SQLite datetime column (naive UTC text)."""
    return str(value.astimezone(dt.UTC).replace(tzinfo=None))


def instants(seed: int) -> list[dt.datetime]:
    """Every 13 minutes through two years (each DST change of every zone above, and hours
    on both sides of it), and some random instants; microseconds 0 on a third of them."""
    rng = random.Random(seed)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    found = [start + dt.timedelta(minutes=13 * i) for i in range(2 * 365 * 24 * 60 // 13)]
    found += [start + dt.timedelta(seconds=rng.randrange(0, 10**9)) for _ in range(2000)]
    return [t.replace(microsecond=0 if i % 3 == 0 else rng.randrange(1, 10**6)) for i, t in enumerate(found)]


@pytest.mark.parametrize("zone_name", ZONES)
def test_the_text_is_the_local_datetimes_isoformat(zone_name, monkeypatch):
    zone = zoneinfo.ZoneInfo(zone_name)
    values = instants(len(zone_name))
    made_generally = []
    general = LocalIsoText.general
    monkeypatch.setattr(LocalIsoText, "general", lambda self, v: made_generally.append(v) or general(self, v))
    text = LocalIsoText(zone)

    shown = text([None, *map(stored, values)])

    assert shown == [None, *(v.astimezone(zone).isoformat() for v in values)]
    # Whole-hour zones take the looked-up hours for every value; the others none.
    assert (made_generally == []) == (zone_name in WHOLE_HOURS)


def test_values_not_stored_as_django_stores_them_are_made_the_general_way():
    zone = zoneinfo.ZoneInfo("Europe/London")
    summer = dt.datetime(2026, 7, 1, 11, 30, 5, 250, tzinfo=dt.UTC)
    text = LocalIsoText(zone)
    expected = "2026-07-01T12:30:05.000250+01:00"

    assert text([summer]) == [expected]  # PostgreSQL gives aware datetimes
    assert text(["2026-07-01T11:30:05.000250"]) == [expected]  # a "T", not Django's space
    assert text(["2026-07-01 11:30:05.000250+00:00"]) == [expected]  # an offset in the text
    assert text(["2026-07-01 13:30:05.000250+02:00"]) == [expected]
    assert text(["2026-07-01 11:30:05.000250", None, "2026-07-01 11:30:05.00025"]) == [expected, None, expected]


class _HalfPastTransition(dt.tzinfo):
    """Whole-hour offsets (+1, then +2) changing at 10:30 UTC: the hour from 10:00 holds
    both and must not be looked up as one."""

    CHANGE = dt.datetime(2026, 3, 1, 10, 30)

    def utcoffset(self, when: dt.datetime | None) -> dt.timedelta:
        assert when is not None
        return dt.timedelta(hours=2 if when.replace(tzinfo=None) - dt.timedelta(hours=1) >= self.CHANGE else 1)

    def fromutc(self, when: dt.datetime) -> dt.datetime:
        naive = when.replace(tzinfo=None)
        return when + dt.timedelta(hours=2 if naive >= self.CHANGE else 1)

    def dst(self, when: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(0)


def test_an_hour_holding_a_transition_off_its_boundary_is_made_value_by_value():
    zone = _HalfPastTransition()
    values = [dt.datetime(2026, 3, 1, 10, minute, tzinfo=dt.UTC) for minute in (0, 29, 30, 59)]
    values += [dt.datetime(2026, 3, 1, 9, 15, tzinfo=dt.UTC), dt.datetime(2026, 3, 1, 11, 15, tzinfo=dt.UTC)]

    shown = LocalIsoText(zone)(list(map(stored, values)))

    assert shown == [v.astimezone(zone).isoformat() for v in values]
    assert shown[1:3] == ["2026-03-01T11:29:00+01:00", "2026-03-01T12:30:00+02:00"]


# --- whole exports ------------------------------------------------------------------------

TAG_SPECS = [
    ("case", "closed_at", ["datetime", "date", "text"]),
    ("case", "created_at", ["datetime"]),
    ("riu", "received_at", ["datetime", "text"]),
    ("investigation", "opened_at", ["datetime", "date", "text"]),
    ("investigation", "closed_at", ["datetime"]),
]


def _seed(zone_name: str) -> Organization:
    org: Organization = OrganizationFactory(timezone=zone_name)  # type: ignore[assignment]
    tag_slots(org, [(entity, path, t) for entity, path, types in TAG_SPECS for t in types], {})
    # Around Europe's spring change (01:00 UTC, 29 March 2026) and St. John's autumn one.
    edges = [dt.datetime(2026, 3, 29, 0, 10, tzinfo=dt.UTC), dt.datetime(2026, 11, 1, 4, 40, tzinfo=dt.UTC)]
    for i in range(24):
        at = edges[i % 2] + dt.timedelta(minutes=11 * i, microseconds=0 if i % 3 else 4321 * i)
        riu = None if i % 5 == 4 else RIUFactory(organization=org, received_at=at - dt.timedelta(minutes=50))
        case = CaseFactory(
            organization=org,
            primary_riu=riu,
            created_at=at,
            reported_at=at - dt.timedelta(days=1, minutes=i),
            closed_at=at + dt.timedelta(hours=i) if i % 3 == 0 else None,
            due_at=at + dt.timedelta(days=10) if i % 4 else None,
        )
        for n in range(1, i % 4 + 1):
            InvestigationFactory(
                case=case,
                number=n,
                opened_at=at + dt.timedelta(minutes=40 * n, microseconds=n),
                closed_at=None if n % 2 else at + dt.timedelta(days=n),
            )
    return org


def _file(org, writer, *, dataset: str, datetimes_as_text: bool) -> bytes:
    plan = RowPlan(
        dataset=dataset,
        options={"max_investigations": 3, "include_overflow": True},
        snapshot=[t.snapshot() for t in TagSlot.objects.filter(organization=org).order_by("slot")],
        timezone=org.timezone,
        now=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        pseudonym_key=bytes(org.pseudonym_key),
        datetimes_as_text=datetimes_as_text,
    )
    cases = cases_filtered(organization_id=org.pk, filters={}, timezone=org.timezone)
    out = io.BytesIO()
    writer.write_blocks(columns=plan.columns, blocks=plan.blocks(cases), stream=out)
    return out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("zone_name", ["Europe/London", "America/St_Johns"])
@pytest.mark.parametrize("dataset", ["cases", "investigations"])
@pytest.mark.parametrize("writer", [CsvWriter(), JsonlWriter()], ids=["csv", "jsonl"])
def test_an_export_with_datetimes_made_as_text_is_the_same_file(zone_name, dataset, writer, monkeypatch):
    org = _seed(zone_name)
    from_datetimes = _file(org, writer, dataset=dataset, datetimes_as_text=False)
    calls, made_generally = [], []
    made, general = LocalIsoText.__call__, LocalIsoText.general
    monkeypatch.setattr(LocalIsoText, "__call__", lambda self, values: calls.append(1) or made(self, values))
    monkeypatch.setattr(LocalIsoText, "general", lambda self, v: made_generally.append(v) or general(self, v))

    from_text = _file(org, writer, dataset=dataset, datetimes_as_text=True)

    assert from_text == from_datetimes
    assert len(calls) >= 6  # the text was made: at least the case's six datetime fields, a call each
    if connection.vendor == "sqlite":  # from the stored text, by the hour where the zone allows
        assert (made_generally == []) == (zone_name == "Europe/London")
    if zone_name == "Europe/London":  # both sides of the change
        assert b"+00:00" in from_text and b"+01:00" in from_text
