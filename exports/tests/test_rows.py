"""The Python path's reading (``exports.rows``): JSON fields read at their tags' paths."""

from __future__ import annotations

import datetime as dt
import gc

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cases.tests.factories import CaseFactory, InvestigationFactory, PartyFactory, RIUFactory
from exports import rows as rows_module
from exports.filters import cases_filtered
from exports.rows import ROWS_GC_THRESHOLD, JsonAt, RowPlan, collecting_rarely
from organizations.models import Organization
from organizations.tests.factories import OrganizationFactory
from tagging.models import TagSlot
from tagging.tests.factories import tag_slots

pytestmark = pytest.mark.django_db

# Numbers whose literal matters (1.0, 2.50, a 30-digit integer, -0.0, 1e-05, 1e300), escapes,
# nesting, a list where an object is walked, an object where a list index is, and documents
# that are not objects.
DOCUMENTS = [
    {"v": "EMEA", "deep": {"v": 1.0}, "arr": [1]},
    {"v": 2.50, "deep": {"v": {"x": [1, 2.5, None]}}},
    {"v": 123456789012345678901234567890, "deep": "not an object"},
    {"v": [], "deep": {"v": ["a", None, True, "=x"]}},
    {"v": 1e300, "deep": {"v": 1}},
    {"v": True},
    {"v": 'ünï "q" \\ \n \u2028 🙂', "deep": {"v": False}},
    {"v": -0.0, "deep": {"v": 1e-05}, "arr": {"0": "an object's key"}},
    {"v": " 1,500 ", "deep": {"v": None}},
    {},
    [1, 2],
    "just text",
]
TAGS = [
    ("case", "custom_fields.v", "text"),
    ("case", "custom_fields.v", "number"),
    ("case", "custom_fields.v", "boolean"),
    ("case", "custom_fields.v", "list"),
    ("case", "custom_fields.deep.v", "text"),
    ("case", "custom_fields.arr.0", "text"),
    ("riu", "custom_fields.v", "number"),
    ("investigation", "custom_fields.deep.v", "text"),
]


def _seed() -> Organization:
    org: Organization = OrganizationFactory(slug="json", timezone="Europe/Paris")  # type: ignore[assignment]
    tag_slots(org, TAGS, identity=[tag for tag in TAGS if tag[2] == "list"])
    created = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)
    for i, document in enumerate(DOCUMENTS):
        riu = None if i % 4 == 3 else RIUFactory(organization=org, custom_fields={"v": document})
        case = CaseFactory(
            organization=org, primary_riu=riu, custom_fields=document, created_at=created + dt.timedelta(hours=i)
        )
        for n in range(i % 3):
            InvestigationFactory(case=case, number=n + 1, custom_fields={"deep": {"v": DOCUMENTS[(i + n) % 9]}})
    return org


def _rows(org) -> list[str]:
    plan = RowPlan(
        dataset="cases",
        options={"max_investigations": 2},
        snapshot=[t.snapshot() for t in TagSlot.objects.filter(organization=org).order_by("slot")],
        timezone=org.timezone,
        now=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        pseudonym_key=bytes(org.pseudonym_key),
    )
    cases = cases_filtered(organization_id=org.pk, filters={}, timezone=org.timezone)
    keys = [c.key for c in plan.columns]
    # repr: NaN is not equal to itself, and 1 must not pass for 1.0 nor True for 1.
    return [repr({k: v for k, v in zip(keys, row, strict=True) if k.startswith("tag_")}) for row in plan.rows(cases)]


def test_json_read_at_its_paths_by_the_database_gives_what_the_walk_in_python_gives(monkeypatch):
    org = _seed()
    extracted = _rows(org)
    monkeypatch.setattr(rows_module, "database_reads_json", lambda: False)
    walked = _rows(org)

    assert extracted == walked
    assert len(extracted) == len(DOCUMENTS)
    # Values that come only from a document, so that both readings reading nothing would fail.
    assert "'EMEA'" in extracted[0] and "Decimal('1500')" not in extracted[0]
    assert "2.5" in extracted[1] and "'Yes'" in extracted[5] and "'tag_1': None" in extracted[10]


def test_on_sqlite_the_database_reads_each_json_field_once_at_its_paths():
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's Python path parses and walks the documents")
    org = _seed()
    plan = RowPlan(
        dataset="cases",
        options={},
        snapshot=[t.snapshot() for t in TagSlot.objects.filter(organization=org)],
        timezone=org.timezone,
        now=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        pseudonym_key=bytes(org.pseudonym_key),
    )
    reads = [s for s in plan._case_select if isinstance(s, JsonAt)]
    assert [r.paths for r in reads] == [
        ['$."arr"."0"', '$."deep"."v"', '$."v"'],
        ['$."v"', '$."v"'],  # the RIU's: one path, asked twice for an array
    ]


@pytest.mark.parametrize("others_between", [1, 5], ids=["ids-nearly-consecutive", "ids-far-apart"])
def test_a_chunks_investigations_and_parties_are_its_cases_own(others_between):
    """Read over the range of the chunk's ids when they are nearly consecutive, else case by
    case: either way another organization's cases in between give nothing."""
    mine, other = OrganizationFactory(), OrganizationFactory()
    expected = {}
    for i in range(6):
        case = CaseFactory(organization=mine)
        for n in range(i % 3):
            InvestigationFactory(case=case, number=n + 1)
        PartyFactory(case=case, organization=mine, role="reporter", full_name=f"Reporter {i}")
        expected[case.reference] = (i % 3, f"Reporter {i}")
        for _ in range(others_between):
            theirs = CaseFactory(organization=other)
            InvestigationFactory(case=theirs, number=1)
            PartyFactory(case=theirs, organization=other, role="reporter", full_name="Not mine")
    plan = RowPlan(
        dataset="cases",
        options={
            "core": ["reference", "investigation_count", "reporter_name"],
            "identity": "include",
            "identity_reason": "test",
            "include_tags": False,
        },
        snapshot=[],
        timezone="UTC",
        now=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        pseudonym_key=bytes(mine.pseudonym_key),
    )
    cases = cases_filtered(organization_id=mine.pk, filters={}, timezone="UTC")
    with CaptureQueriesContext(connection) as queries:
        rows = {row[0]: (row[1], row[2]) for row in plan.rows(cases)}
    assert rows == expected
    parties = [q["sql"] for q in queries.captured_queries if 'FROM "cases_party"' in q["sql"]]
    by_range = ['"cases_party"."case_id" >=' in sql for sql in parties]
    assert by_range == [others_between == 1]  # one query, by range only when the ids are near


def test_rows_are_made_with_the_collector_tuned_and_its_settings_come_back():
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with pytest.raises(RuntimeError, match="stop"), collecting_rarely():
        assert gc.get_threshold() == (ROWS_GC_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > frozen  # the process's objects are left out
        with collecting_rarely():  # another export in the same process
            pass
        assert gc.get_threshold()[0] == ROWS_GC_THRESHOLD  # still the first export's
        raise RuntimeError("stop")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen


def test_each_chunk_is_read_from_the_last_ones_key_whatever_the_exports_own_date_bound(monkeypatch):
    """SQLite ranges an index over the first lower bound of a column in the ``WHERE``: with
    the export's own date bound first, every chunk read the index from that date, the last
    chunk of an export reading all the cases before it. Counted in SQLite's virtual machine
    steps, which no machine's speed moves: the last chunk costs what the second does."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL ranges over the tighter bound whatever the order")
    org = OrganizationFactory(timezone="UTC")
    start = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    for i in range(300):
        CaseFactory(organization=org, primary_riu=None, created_at=start + dt.timedelta(minutes=i))
    monkeypatch.setattr(rows_module, "CHUNK_SIZE", 10)
    steps: list[int] = []
    fetch_sql = rows_module.fetch_sql

    def counted(sql, params, convert, keep=None):
        count = [0]

        def step() -> int:
            count[0] += 1
            return 0  # go on

        connection.connection.set_progress_handler(step, 1)
        try:
            return fetch_sql(sql, params, convert, keep)
        finally:
            connection.connection.set_progress_handler(None, 1)
            if 'FROM "cases_case"' in sql:  # the chunks' own reads (not their investigations')
                steps.append(count[0])

    monkeypatch.setattr(rows_module, "fetch_sql", counted)
    plan = RowPlan(
        dataset="cases",
        options={"core": ["reference"], "include_tags": False},
        snapshot=[],
        timezone="UTC",
        now=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        pseudonym_key=bytes(org.pseudonym_key),
    )
    cases = cases_filtered(organization_id=org.pk, filters={"created_from": "2026-01-01"}, timezone="UTC")

    references = [row[0] for row in plan.rows(cases)]

    assert len(references) == 300 and len(set(references)) == 300
    assert len(steps) == 31  # 30 chunks, and the read after a full one that finds none
    # Before: the 30th chunk stepped over the 290 cases before it (ten times the second's steps).
    assert steps[29] < 1.5 * steps[1], steps
