"""The column catalog: core case columns, investigation groups, tag columns, and the
investigations dataset. Keys are stable snake_case: integrators build on them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from cases.models import (
    PARTY_PSEUDONYM_COLUMNS,
    RIU,
    Case,
    CaseStatus,
    Finding,
    IntakeChannel,
    Investigation,
    InvestigationStatus,
    Outcome,
    Priority,
    ReporterRelationship,
    RIUType,
    Severity,
)
from config.errors import ApplicationError
from exports.columns_base import Column, ColumnGroup, ColumnType, IdentityMode, Sensitivity
from exports.local_time import LocalIsoText
from exports.sql import Json, SqlBuilder
from tagging.formatting import COERCED, LIST_SEPARATOR, pseudonymiser
from tagging.paths import parse_field_path
from tagging.resolution import CompiledTag, compile_tags, tag_pseudonym_column

T = ColumnType
JsonKeys = tuple[str, ...]
MAX_INVESTIGATIONS = 10
DEFAULT_MAX_INVESTIGATIONS = 3


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each fetched value sits in a row tuple, how a case value is converted from
    the database's, and the export's zone and clock."""

    case: Mapping[str, int]
    investigation: Mapping[str, int]
    zone: dt.tzinfo
    now: dt.datetime
    pseudonym_key: bytes | None = None  # the organization's, when identities are pseudonymised
    case_convert: Mapping[int, Callable[[Any], Any]] = dataclasses.field(default_factory=dict)
    # The paths read in each JSON field, case's and investigation's: such a field's value in
    # a row is the list of the values at its paths, in this order (``exports.rows``).
    case_paths: Mapping[str, Sequence[JsonKeys]] = dataclasses.field(default_factory=dict)
    investigation_paths: Mapping[str, Sequence[JsonKeys]] = dataclasses.field(default_factory=dict)
    # Set when the file shows a datetime as its ISO text (CSV, JSONL): a case's datetime
    # cells are then that text, made from the stored value (``Block.local_cells``).
    local_text: LocalIsoText | None = None
    # Then an investigation's datetimes are read as stored too: converted by these (by index)
    # where a column needs the datetime itself.
    investigation_convert: Mapping[int, Callable[[Any], Any]] = dataclasses.field(default_factory=dict)


class Block:
    """A chunk of an export's rows, column-wise: what a compiled column reads.

    ``cases`` holds each row's case tuple as the database gave it, ``more`` further case
    values column by column (the case's parties), ``owns`` each row's investigations of the
    case (converted tuples, by number), ``invs`` each row's investigation (the latest one,
    or the row's own in the investigations dataset). A case value is converted once per
    chunk, when a column first reads it, and a datetime put in the organization's zone once.
    """

    __slots__ = ("_local", "_local_cells", "_nth", "_raw", "_values", "invs", "layout", "owns")

    def __init__(
        self,
        layout: Layout,
        cases: Sequence[Sequence[Any]],
        owns: Sequence[Sequence[Sequence[Any]]],
        invs: Sequence[Sequence[Any] | None],
        more: Sequence[Sequence[Any]] = (),
    ) -> None:
        self.layout, self.owns, self.invs = layout, owns, invs
        self._raw: list[Sequence[Any]] = [*zip(*cases, strict=True), *more]
        self._values: dict[int, Sequence[Any]] = {}
        self._local: dict[int, Sequence[Any]] = {}
        self._local_cells: dict[int, Sequence[Any]] = {}
        self._nth: dict[int, Sequence[Sequence[Any] | None]] = {}

    def case(self, i: int) -> Sequence[Any]:
        """The i-th fetched case value of every row, as Python values."""
        values = self._values.get(i)
        if values is None:
            raw, convert = self._raw[i], self.layout.case_convert.get(i)
            values = raw if convert is None else [None if v is None else convert(v) for v in raw]
            self._values[i] = values
        return values

    def local(self, i: int) -> Sequence[Any]:
        """The i-th case value (an aware datetime) of every row, in the organization's zone."""
        values = self._local.get(i)
        if values is None:
            zone = self.layout.zone
            values = self._local[i] = [None if v is None else v.astimezone(zone) for v in self.case(i)]
        return values

    def local_cells(self, i: int) -> Sequence[Any]:
        """The cells of the i-th case value (an aware datetime) in the organization's zone:
        the datetimes, or their ISO text where the file shows that (``Layout.local_text``),
        made from the values as read (not parsed first)."""
        if (text := self.layout.local_text) is None:
            return self.local(i)
        values = self._local_cells.get(i)
        if values is None:
            values = self._local_cells[i] = text(self._raw[i])
        return values

    def nth(self, n: int) -> Sequence[Sequence[Any] | None]:
        """Each row's case's n-th investigation (from 0), or None: found once for the
        investigation group's every field."""
        found = self._nth.get(n)
        if found is None:
            found = self._nth[n] = [own[n] if len(own) > n else None for own in self.owns]
        return found


#: A compiled column: its values for every row of a block, in order.
Extractor = Callable[[Block], Sequence[Any]]


def block_case(i: int) -> Extractor:
    """The column of the i-th fetched case value."""
    return lambda block: block.case(i)


@dataclass(frozen=True, slots=True)
class ExportColumn:
    """One column of an export: its public shape (key, label, type), the values it reads
    and how to compile its cell. The file's header and its values come from the same list
    of these, so they cannot drift apart."""

    column: Column
    fields: tuple[str, ...]  # Case.values_list() lookups this column reads
    compile: Callable[[Layout], Extractor]
    investigation_fields: tuple[str, ...] = ()  # Investigation lookups it reads
    # Its CSV text as a PostgreSQL expression (``exports.sql``); None: Python only.
    sql: Callable[[SqlBuilder, Refs], str | None] | None = None
    # For an identity column: the people's values before they are shown or pseudonymised.
    identity: IdentitySource | None = None
    # The JSON field (one of ``fields`` or ``investigation_fields``) and the keys it reads.
    json_path: tuple[str, JsonKeys] | None = None


@dataclass(frozen=True, slots=True)
class IdentitySource:
    """Where an identity column's values come from, raw: ``compile`` reads a text, a list of
    texts or, for a tag, the JSON value. In SQL either ``sql`` gives the same as a SQL text
    or a ``Json`` (None: Python only), pseudonymised per row; or ``pseudonym_sql`` gives
    the pseudonyms themselves, made once per person (the case's parties). In Python,
    ``pseudonyms`` is the lookup under which a row carries the pseudonyms themselves (the
    parties' made ahead, ``exports.rows``), read as ``pseudonyms_compile`` reads it.
    ``pseudonym_column`` names the column in the pseudonym's HMAC (``organizations.pseudonyms``)."""

    pseudonym_column: str
    compile: Callable[[Layout], Extractor]
    sql: Callable[[SqlBuilder, Refs], str | Json | None] | None = None
    pseudonym_sql: Callable[[SqlBuilder, Refs, str], str] | None = None
    pseudonyms: str | None = None
    pseudonyms_compile: Callable[[Layout], Extractor] | None = None


class Refs(Protocol):
    """Where a column's values are in the pushdown query (``exports.pushdown``)."""

    now: str  # a placeholder for the export's generation time

    def case(self, lookup: str) -> str: ...
    def nth(self, n: int, field: str) -> str: ...
    def latest(self, field: str) -> str: ...
    def count(self) -> str: ...
    def value(self, expression: str) -> str: ...
    def json(self, found: str) -> Json: ...
    def party(self, role: str, field: str, *, many: bool) -> str: ...
    def party_pseudonyms(self, role: str, field: str, *, many: bool, column: str) -> str: ...
    def pseudonym_pads(self) -> tuple[str, str]: ...


def _field(name: str) -> Callable[[Layout], Extractor]:
    def compile(layout: Layout) -> Extractor:
        return block_case(layout.case[name])

    return compile


def _local(name: str) -> Callable[[Layout], Extractor]:
    """An aware datetime, shown in the organization's zone."""

    def compile(layout: Layout) -> Extractor:
        i = layout.case[name]
        return lambda block: block.local_cells(i)

    return compile


def _choice(name: str, labels: Mapping[str, str]) -> Callable[[Layout], Extractor]:
    def compile(layout: Layout) -> Extractor:
        i, names = layout.case[name], dict(labels)
        return lambda block: [names.get(v, v) if v else None for v in block.case(i)]

    return compile


def _core(
    key: str,
    label: str,
    type_: ColumnType,
    width: int = 16,
    field: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> ExportColumn:
    source = field or key
    if labels is not None:
        compile = _choice(source, labels)
    elif type_ == T.DATETIME:
        compile = _local(source)
    else:
        compile = _field(source)
    return ExportColumn(
        Column(key, label, type_, ColumnGroup.CORE, width), (source,), compile, sql=_typed_sql(source, type_, labels)
    )


def _typed_sql(
    lookup: str,
    type_: ColumnType,
    labels: Mapping[str, str] | None,
    ref: Callable[[Refs], str] | None = None,
    empty_is_null: bool = False,
) -> Callable[[SqlBuilder, Refs], str | None]:
    """The cell of a stored value of ``type_`` (read at ``ref``, default the case lookup)."""

    def sql(b: SqlBuilder, refs: Refs) -> str | None:
        at = ref(refs) if ref is not None else refs.case(lookup)
        if labels is not None:
            return b.choice(at, labels)
        if type_ == T.DATETIME:
            return b.datetime(at)
        if type_ == T.BOOLEAN:
            return b.boolean(at)
        if type_ in (T.INTEGER, T.DECIMAL):
            return b.number(at, integer=type_ == T.INTEGER)
        return b.text(at, empty_is_null=empty_is_null)

    return sql


def _computed(
    key: str,
    label: str,
    type_: ColumnType,
    fields: tuple[str, ...],
    compile: Callable[[Layout], Extractor],
    width: int = 14,
    sql: Callable[[SqlBuilder, Refs], str | None] | None = None,
    investigation_fields: tuple[str, ...] = (),
) -> ExportColumn:
    return ExportColumn(Column(key, label, type_, ColumnGroup.CORE, width), fields, compile, investigation_fields, sql)


def _days_sql(b: SqlBuilder, end: str, start: str) -> str:
    """``timedelta.days`` (floored) of ``end - start``, at least 0."""
    days = f"floor(extract(epoch FROM ({end} - {start})) / 86400)::bigint"
    return b.number(f"CASE WHEN {days} < 0 THEN 0 ELSE {days} END", integer=True)  # NULL stays NULL


def _days(start: Any, end: Any) -> int | None:
    if start is None or end is None:
        return None
    return max(0, (end - start).days)


def _days_open(layout: Layout) -> Extractor:
    created, closed, now = layout.case["created_at"], layout.case["closed_at"], layout.now
    return lambda block: [_days(c, x or now) for c, x in zip(block.case(created), block.case(closed), strict=True)]


def _days_to_close(layout: Layout) -> Extractor:
    created, closed = layout.case["created_at"], layout.case["closed_at"]
    return lambda block: [_days(c, x) for c, x in zip(block.case(created), block.case(closed), strict=True)]


def _overdue(layout: Layout) -> Extractor:
    due, closed, now = layout.case["due_at"], layout.case["closed_at"], layout.now
    return lambda block: [
        None if d is None else d < (x or now) for d, x in zip(block.case(due), block.case(closed), strict=True)
    ]


def _investigation_count(layout: Layout) -> Extractor:
    return lambda block: [len(own) for own in block.owns]


def _created_month(layout: Layout) -> Extractor:
    i = layout.case["created_at"]
    return lambda block: [f"{d.year:04d}-{d.month:02d}" for d in block.local(i)]


def _created_year(layout: Layout) -> Extractor:
    i = layout.case["created_at"]
    return lambda block: [d.year for d in block.local(i)]


def party_lookup(role: str, field: str, *, many: bool, pseudonyms: bool = False) -> str:
    """The name under which a row carries a party value: the first reporter's ``field``, or
    (``many``) the list of every non-blank ``field`` of the case's parties in ``role``; or
    (``pseudonyms``) their pseudonyms instead (``exports.rows``)."""
    return f"{PSEUDONYMS_PREFIX if pseudonyms else ''}{'parties' if many else 'party'}:{role}:{field}"


PSEUDONYMS_PREFIX = "psn:"


def _party(key: str, label: str, role: str, field: str, *, many: bool = False, width: int = 24) -> ExportColumn:
    """An identity column about the case's people (``cases.Party``): shown as stored (lists
    joined with ``"; "``), or pseudonymised, or left out, as the export asks."""
    lookup = party_lookup(role, field, many=many)
    if PARTY_PSEUDONYM_COLUMNS.get(field, {}).get(role) != key:
        raise ValueError(f"cases.models.PARTY_PSEUDONYM_COLUMNS does not give the {role}'s {field} to {key}.")

    pseudonyms = party_lookup(role, field, many=many, pseudonyms=True)

    def raw(layout: Layout) -> Extractor:
        return block_case(layout.case[lookup])

    def shown_of(read: str) -> Callable[[Layout], Extractor]:
        """The values (or the pseudonyms) read as ``read``, lists joined with ``"; "``."""

        def compile(layout: Layout) -> Extractor:
            i = layout.case[read]
            if many:
                return lambda block: [LIST_SEPARATOR.join(v) or None for v in block.case(i)]
            return lambda block: [v or None for v in block.case(i)]

        return compile

    def sql(b: SqlBuilder, refs: Refs) -> str:
        at = refs.party(role, field, many=many)
        return b.text(f"array_to_string({at}, '{LIST_SEPARATOR}')" if many else at, empty_is_null=True)

    def pseudonyms_sql(b: SqlBuilder, refs: Refs, name: str) -> str:
        return refs.party_pseudonyms(role, field, many=many, column=name)

    column = Column(key, label, T.LIST if many else T.TEXT, ColumnGroup.CORE, width, Sensitivity.IDENTITY)
    identity = IdentitySource(
        key, raw, pseudonym_sql=pseudonyms_sql, pseudonyms=pseudonyms, pseudonyms_compile=shown_of(pseudonyms)
    )
    return ExportColumn(column, (lookup,), shown_of(lookup), sql=sql, identity=identity)


# "Days open" and "overdue" count to the export's generation time (``Layout.now``).
CORE_COLUMNS: list[ExportColumn] = [
    _core("reference", "Case reference", T.TEXT, 18),
    _core("title", "Title", T.TEXT, 40),
    _core("summary", "Summary", T.TEXT, 50),
    _core("status", "Status", T.CHOICE, 12, labels=dict(CaseStatus.choices)),
    _core("category", "Category", T.TEXT, 22),
    _core("subcategory", "Subcategory", T.TEXT, 22),
    _core("severity", "Severity", T.CHOICE, 10, labels=dict(Severity.choices)),
    _core("priority", "Priority", T.CHOICE, 12, labels=dict(Priority.choices)),
    _core("intake_channel", "Intake channel", T.CHOICE, 14, labels=dict(IntakeChannel.choices)),
    _core("business_unit", "Business unit", T.TEXT, 16),
    _core("department", "Department", T.TEXT, 16),
    _core("country", "Country", T.TEXT, 8),
    _core("region", "Region", T.TEXT, 8),
    _core("site", "Site", T.TEXT, 14),
    _core("reported_at", "Reported at", T.DATETIME, 20),
    _core("created_at", "Created at", T.DATETIME, 20),
    _core("updated_at", "Updated at", T.DATETIME, 20),
    _core("due_at", "Due at", T.DATETIME, 20),
    _core("closed_at", "Closed at", T.DATETIME, 20),
    _computed(
        "days_open",
        "Days open",
        T.INTEGER,
        ("created_at", "closed_at"),
        _days_open,
        sql=lambda b, r: _days_sql(b, f"coalesce({r.case('closed_at')}, {r.now})", r.case("created_at")),
    ),
    _computed(
        "days_to_close",
        "Days to close",
        T.INTEGER,
        ("created_at", "closed_at"),
        _days_to_close,
        sql=lambda b, r: _days_sql(b, r.case("closed_at"), r.case("created_at")),
    ),
    _computed(
        "is_overdue",
        "Overdue",
        T.BOOLEAN,
        ("due_at", "closed_at"),
        _overdue,
        sql=lambda b, r: b.boolean(f"{r.case('due_at')} < coalesce({r.case('closed_at')}, {r.now})"),
    ),
    _core("assignee", "Assignee", T.TEXT, 14, field="assignee__username"),
    _core("is_anonymous", "Anonymous reporter", T.BOOLEAN, 10),
    _core("outcome", "Outcome", T.CHOICE, 18, labels=dict(Outcome.choices)),
    _core("is_substantiated", "Substantiated", T.BOOLEAN, 12),
    _core("financial_impact", "Financial impact", T.DECIMAL, 14),
    _core("currency", "Currency", T.TEXT, 8),
    _core("risk_score", "Risk score", T.INTEGER, 8),
    _core("retaliation_alleged", "Retaliation alleged", T.BOOLEAN, 10),
    _core("involves_management", "Involves management", T.BOOLEAN, 10),
    _core("legal_hold", "Legal hold", T.BOOLEAN, 10),
    _core("escalated", "Escalated", T.BOOLEAN, 10),
    _core("policy_reference", "Policy reference", T.TEXT, 12),
    _core("closure_reason", "Closure reason", T.TEXT, 24),
    _core("source_system", "Source system", T.TEXT, 10),
    _core("external_reference", "External reference", T.TEXT, 14),
    _core("riu_reference", "RIU reference", T.TEXT, 18, field="primary_riu__reference"),
    _core("riu_type", "RIU type", T.CHOICE, 16, field="primary_riu__riu_type", labels=dict(RIUType.choices)),
    _core("riu_received_at", "RIU received at", T.DATETIME, 20, field="primary_riu__received_at"),
    _core(
        "reporter_relationship",
        "Reporter relationship",
        T.CHOICE,
        18,
        field="primary_riu__reporter_relationship",
        labels=dict(ReporterRelationship.choices),
    ),
    _core("riu_language", "Report language", T.TEXT, 8, field="primary_riu__language"),
    _computed(
        "investigation_count",
        "Investigations",
        T.INTEGER,
        (),
        _investigation_count,
        8,
        sql=lambda b, r: b.number(r.count(), integer=True),
        investigation_fields=("case_id",),  # counts the case's investigations
    ),
    _computed(
        "created_month",
        "Created month",
        T.TEXT,
        ("created_at",),
        _created_month,
        10,
        sql=lambda b, r: b.text(f"to_char({r.case('created_at')}, 'YYYY-MM')"),
    ),
    _computed(
        "created_year",
        "Created year",
        T.INTEGER,
        ("created_at",),
        _created_year,
        8,
        sql=lambda b, r: b.number(f"extract(year FROM {r.case('created_at')})::int", integer=True),
    ),
    # The people in the case: identity columns (pseudonymised unless revealed).
    _party("reporter_name", "Reporter name", "reporter", "full_name"),
    _party("reporter_email", "Reporter email", "reporter", "email"),
    _party("reporter_phone", "Reporter phone", "reporter", "phone", width=16),
    _party("subject_names", "Subjects", "subject", "full_name", many=True, width=30),
    _party("subject_employee_ids", "Subject employee ids", "subject", "employee_id", many=True, width=18),
    _party("witness_names", "Witnesses", "witness", "full_name", many=True, width=30),
]
CORE_BY_KEY = {c.column.key: c for c in CORE_COLUMNS}


CORE_KEYS = tuple(CORE_BY_KEY)

#: (suffix, label, type, width, Investigation field) of each investigation group column.
INVESTIGATION_FIELDS: list[tuple[str, str, ColumnType, int, str]] = [
    ("status", "Status", T.CHOICE, 12, "status"),
    ("investigator", "Investigator", T.TEXT, 18, "investigator"),
    ("allegation", "Allegation", T.TEXT, 20, "allegation_type"),
    ("opened_at", "Opened", T.DATETIME, 20, "opened_at"),
    ("closed_at", "Closed", T.DATETIME, 20, "closed_at"),
    ("finding", "Finding", T.CHOICE, 16, "finding"),
    ("actions_taken", "Actions taken", T.TEXT, 30, "actions_taken"),
]
INVESTIGATION_LABELS = {"status": dict(InvestigationStatus.choices), "finding": dict(Finding.choices)}

TAG_TYPES = {
    "text": T.TEXT,
    "number": T.NUMBER,
    "date": T.DATE,
    "datetime": T.DATETIME,
    "boolean": T.BOOLEAN,
    "list": T.LIST,
}


def _investigation_cells(
    field: str, labels: Mapping[str, str] | None, layout: Layout
) -> Callable[[Sequence[Any]], list[Any]]:
    """An investigation field's cells from its values: choice labels, local datetimes (or
    their ISO text, from the values as stored: ``Layout.local_text``), "" as missing."""
    if field in INVESTIGATION_DATETIMES:
        if layout.local_text is not None:
            return layout.local_text
        zone = layout.zone
        return lambda values: [None if v is None else v.astimezone(zone) for v in values]
    if labels is not None:
        names = dict(labels)
        return lambda values: [names.get(v, v) if v else None for v in values]
    return lambda values: [None if v == "" else v for v in values]


def _nth_investigation(n: int, field: str, labels: Mapping[str, str] | None) -> Callable[[Layout], Extractor]:
    def compile(layout: Layout) -> Extractor:
        i, cells = layout.investigation[field], _investigation_cells(field, labels, layout)
        return lambda block: cells([None if inv is None else inv[i] for inv in block.nth(n)])

    return compile


def _this_investigation(field: str, labels: Mapping[str, str] | None) -> Callable[[Layout], Extractor]:
    def compile(layout: Layout) -> Extractor:
        i, cells = layout.investigation[field], _investigation_cells(field, labels, layout)
        return lambda block: cells([None if inv is None else inv[i] for inv in block.invs])

    return compile


def _overflow(maximum: int) -> Callable[[Layout], Extractor]:
    def compile(layout: Layout) -> Extractor:
        return lambda block: [max(0, len(own) - maximum) for own in block.owns]

    return compile


def _nth_ref(n: int, field: str) -> Callable[[Refs], str]:
    return lambda refs: refs.nth(n, field)


def investigation_group_columns(max_investigations: int, include_overflow: bool) -> list[ExportColumn]:
    """Investigation i — Status, — Investigator… for i in 1..max, then the overflow count."""
    columns = [
        ExportColumn(
            Column(
                f"investigation_{i}_{suffix}", f"Investigation {i} — {label}", type_, ColumnGroup.INVESTIGATION, width
            ),
            (),
            _nth_investigation(i - 1, field, INVESTIGATION_LABELS.get(suffix)),
            (field,),
            sql=_typed_sql(field, type_, INVESTIGATION_LABELS.get(suffix), _nth_ref(i - 1, field), empty_is_null=True),
        )
        for i in range(1, max_investigations + 1)
        for suffix, label, type_, width, field in INVESTIGATION_FIELDS
    ]
    if include_overflow:
        overflow = Column(
            "investigations_overflow",
            f"Investigations beyond {max_investigations}",
            T.INTEGER,
            ColumnGroup.INVESTIGATION,
            10,
        )
        columns.append(
            ExportColumn(
                overflow,
                (),
                _overflow(max_investigations),
                ("case_id",),  # counts the case's investigations
                sql=lambda b, r: b.number(f"GREATEST({r.count()}::int - {max_investigations:d}, 0)", integer=True),
            )
        )
    return columns


#: Fields read as aware datetimes and shown in the organization's zone, per entity.
CASE_DATETIMES = frozenset({"reported_at", "created_at", "updated_at", "due_at", "closed_at"})
RIU_DATETIMES = frozenset({"received_at"})
INVESTIGATION_DATETIMES = frozenset({"opened_at", "closed_at"})
RIU_PREFIX = "primary_riu__"


def _tag(tag: CompiledTag) -> ExportColumn:
    """A tag column: the entity's field (or a custom-field path in it), typed by the tag."""
    path = parse_field_path(tag.source_entity, tag.field_path)
    entity, field, keys = path.source_entity, path.field, path.keys
    lookup = RIU_PREFIX + field if entity == "riu" else field
    local = not keys and field in {"case": CASE_DATETIMES, "riu": RIU_DATETIMES}.get(entity, INVESTIGATION_DATETIMES)
    coercer, coerced = tag.coercer, COERCED[tag.data_type]

    def values(layout: Layout) -> Extractor:
        """The entity's stored values: the field's, or what lies at the path in its JSON
        (a JSON field is read as the values at its paths: this path's is the n-th)."""
        if entity == "investigation":
            i = layout.investigation[field]
            n = layout.investigation_paths[field].index(keys) if keys else None
            if n is None and (convert := layout.investigation_convert.get(i)) is not None:
                return lambda block: [None if inv is None or inv[i] is None else convert(inv[i]) for inv in block.invs]
            if n is None:
                return lambda block: [None if inv is None else inv[i] for inv in block.invs]
            return lambda block: [None if inv is None or inv[i] is None else inv[i][n] for inv in block.invs]
        i = layout.case[lookup]
        if not keys:
            return block_case(i)
        n = layout.case_paths[lookup].index(keys)
        return lambda block: [None if v is None else v[n] for v in block.case(i)]

    def compile(layout: Layout) -> Extractor:
        raw = values(layout)
        if local and entity != "investigation" and tag.data_type == "datetime":
            i = layout.case[lookup]
            return lambda block: block.local_cells(i)  # the datetime as it is, or its ISO text
        if local and tag.data_type == "datetime" and (text := layout.local_text) is not None:
            i = layout.investigation[field]  # an investigation's, as stored
            return lambda block: text([None if inv is None else inv[i] for inv in block.invs])
        if local and entity != "investigation":
            i = layout.case[lookup]
            raw = lambda block: block.local(i)  # noqa: E731
        elif local:
            zone, stored = layout.zone, raw
            raw = lambda block: [None if v is None else v.astimezone(zone) for v in stored(block)]  # noqa: E731
        return lambda block: [
            None if v is None or v == "" else v if v.__class__ in coerced else coercer(v) for v in raw(block)
        ]

    def sql(b: SqlBuilder, refs: Refs) -> str | None:
        at = refs.latest(field) if entity == "investigation" else refs.case(lookup)
        if keys:
            found = b.json_at(at, keys)
            value = refs.json(found)
            return b.tag_json(value, tag.data_type)
        return b.tag_field(at, _FIELD_KINDS[entity].get(field), tag.data_type)

    def raw(layout: Layout) -> Extractor:
        """The value as stored (the JSON value at the path), for pseudonymising."""
        return values(layout)

    def raw_sql(b: SqlBuilder, refs: Refs) -> str | Json | None:
        at = refs.latest(field) if entity == "investigation" else refs.case(lookup)
        if keys:
            found = b.json_at(at, keys)
            return refs.json(found)
        return at if _FIELD_KINDS[entity].get(field) in ("CharField", "TextField") else None

    sensitivity = Sensitivity(tag.sensitivity)
    column = Column(f"tag_{tag.slot}", tag.label, TAG_TYPES[tag.data_type], ColumnGroup.TAG, 18, sensitivity)
    identity = (
        IdentitySource(tag_pseudonym_column(tag.source_entity, tag.field_path), raw, raw_sql)
        if sensitivity == Sensitivity.IDENTITY
        else None
    )
    json_path = ((field if entity == "investigation" else lookup), keys) if keys else None
    if entity == "investigation":
        return ExportColumn(column, (), compile, (field,), sql=sql, identity=identity, json_path=json_path)
    return ExportColumn(column, (lookup,), compile, sql=sql, identity=identity, json_path=json_path)


#: The model field class of each plain field a tag may read, per entity.
_FIELD_KINDS = {
    entity: {f.name: f.get_internal_type() for f in model._meta.concrete_fields}
    for entity, model in (("case", Case), ("riu", RIU), ("investigation", Investigation))
}


def tag_export_columns(snapshot: Sequence[Mapping[str, Any]], taken: set[str] | None = None) -> list[ExportColumn]:
    """One column per tag slot of the job's snapshot, in slot order, labelled by the tag.

    A tag label that repeats a core column's header gets " (tag)" so that spreadsheet
    headers stay unambiguous; the key (``tag_<slot>``) is always unique.
    """
    taken = {label.casefold() for label in taken or set()}
    columns = []
    for export_column in map(_tag, compile_tags(snapshot)):
        column = export_column.column
        if column.label.casefold() in taken:
            export_column = replace(export_column, column=replace(column, label=f"{column.label} (tag)"))
        columns.append(export_column)
    return columns


#: Key columns of the parent case, repeated on every row of the investigations dataset.
INVESTIGATION_DATASET_CASE_KEYS = (
    "reference",
    "title",
    "status",
    "category",
    "severity",
    "business_unit",
    "country",
    "created_at",
)
INVESTIGATION_DATASET_OWN = [
    ExportColumn(
        Column("investigation_number", "Investigation number", T.INTEGER, ColumnGroup.INVESTIGATION, 8),
        (),
        _this_investigation("number", None),
        ("number",),
    ),
    *[
        ExportColumn(
            Column(
                f"investigation_{suffix}", f"Investigation {label.lower()}", type_, ColumnGroup.INVESTIGATION, width
            ),
            (),
            _this_investigation(field, INVESTIGATION_LABELS.get(suffix)),
            (field,),
        )
        for suffix, label, type_, width, field in INVESTIGATION_FIELDS
    ],
]


def _case_key_column(key: str) -> ExportColumn:
    """A parent-case column on an investigations row: ``case_`` key, "Case …" label."""
    core = CORE_BY_KEY[key]
    label = core.column.label
    label = label if label.startswith("Case") else f"Case {label[0].lower()}{label[1:]}"
    return replace(core, column=replace(core.column, key=f"case_{key}", label=label))


COLUMN_DEFAULTS: dict[str, Any] = {
    "include_investigations": True,
    "max_investigations": DEFAULT_MAX_INVESTIGATIONS,
    "include_overflow": False,
    "include_tags": True,
    "core": None,
    "identity": IdentityMode.PSEUDONYMISE.value,
    "identity_reason": "",
}
IDENTITY_REASON_MAX = 500
IDENTITY_MODES = [mode.value for mode in IdentityMode]


def columns_resolve(raw: Any) -> dict[str, Any]:
    """Validate column options (unknown keys and core keys are 400s) and fill defaults."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ApplicationError("columns must be an object.", field="columns")
    unknown = sorted(set(raw) - set(COLUMN_DEFAULTS))
    if unknown:
        raise ApplicationError(
            f"Unknown column option {', '.join(map(repr, unknown))}: use {', '.join(COLUMN_DEFAULTS)}.", field="columns"
        )
    options = {**COLUMN_DEFAULTS, **{k: v for k, v in raw.items() if v is not None or k == "core"}}
    for key in ("include_investigations", "include_overflow", "include_tags"):
        if not isinstance(options[key], bool):
            raise ApplicationError(f"{key} must be true or false.", field="columns")
    maximum = options["max_investigations"]
    if isinstance(maximum, bool) or not isinstance(maximum, int) or not 0 <= maximum <= MAX_INVESTIGATIONS:
        raise ApplicationError(
            f"max_investigations must be a whole number from 0 to {MAX_INVESTIGATIONS}.", field="columns"
        )
    core = options["core"]
    if core is not None:
        if not isinstance(core, list) or not core or not all(isinstance(k, str) for k in core):
            raise ApplicationError(
                "core must be null (all core columns) or a non-empty list of column keys.", field="columns"
            )
        bad = [k for k in core if k not in CORE_KEYS]
        if bad:
            raise ApplicationError(
                f"Unknown core column {', '.join(map(repr, bad))}; GET …/columns/ lists the keys.", field="columns"
            )
        if len(set(core)) != len(core):
            raise ApplicationError("core lists a column twice.", field="columns")
    _identity_resolve(options)
    return options


def _identity_resolve(options: dict[str, Any]) -> None:
    """``identity`` is one of the modes; ``include`` needs a reason of 1–500 characters
    (kept trimmed), the other modes keep none. Who may include is the service's question."""
    if options["identity"] not in IDENTITY_MODES:
        raise ApplicationError(f"identity must be one of {', '.join(IDENTITY_MODES)}.", field="columns.identity")
    reason = options["identity_reason"]
    if options["identity"] != IdentityMode.INCLUDE:
        options["identity_reason"] = ""
        return
    if not isinstance(reason, str) or not 1 <= len(reason.strip()) <= IDENTITY_REASON_MAX:
        raise ApplicationError(
            f"Say why identities are revealed: identity_reason must be 1 to {IDENTITY_REASON_MAX} characters.",
            field="columns.identity_reason",
        )
    options["identity_reason"] = reason.strip()


def selected_core(options: Mapping[str, Any]) -> list[ExportColumn]:
    """The core columns an export includes, in the requested order."""
    if options.get("core") is None:
        return list(CORE_COLUMNS)
    return [CORE_BY_KEY[k] for k in options["core"]]


def export_columns(
    *, dataset: str, options: Mapping[str, Any], snapshot: Sequence[Mapping[str, Any]]
) -> list[ExportColumn]:
    """Every column of a file, in order, for a dataset, column options and tag snapshot.

    The one place an export's shape is decided: the header, the Python row function and
    the SQL of an export are all compiled from this list.
    """

    def tags(before: list[ExportColumn]) -> list[ExportColumn]:
        if not options.get("include_tags", True):
            return []
        return tag_export_columns(snapshot, {c.column.label for c in before})

    if dataset == "investigations":
        base = [*INVESTIGATION_DATASET_OWN, *map(_case_key_column, INVESTIGATION_DATASET_CASE_KEYS)]
        return identity_applied([*base, *tags(base)], options.get("identity", IdentityMode.PSEUDONYMISE))
    core = selected_core(options)
    groups = (
        investigation_group_columns(
            options.get("max_investigations", DEFAULT_MAX_INVESTIGATIONS), options.get("include_overflow", False)
        )
        if options.get("include_investigations", True)
        else []
    )
    return identity_applied(
        [*core, *groups, *tags([*core, *groups])], options.get("identity", IdentityMode.PSEUDONYMISE)
    )


def identity_applied(columns: list[ExportColumn], mode: str) -> list[ExportColumn]:
    """The columns as the export's identity mode wants them: identity columns shown as
    stored (``include``), left out (``omit``) or pseudonymised (the default)."""
    if mode == IdentityMode.INCLUDE:
        return columns
    if mode == IdentityMode.OMIT:
        return [c for c in columns if c.column.sensitivity != Sensitivity.IDENTITY]
    return [_pseudonymised(c) if c.identity is not None else c for c in columns]


def _pseudonymised(export_column: ExportColumn) -> ExportColumn:
    """An identity column whose every person is a pseudonym (text; lists stay lists)."""
    source = export_column.identity
    assert source is not None
    name = source.pseudonym_column

    def compile(layout: Layout) -> Extractor:
        key = layout.pseudonym_key
        if key is None:
            raise ValueError("Pseudonymised columns need the organization's pseudonym key.")
        if source.pseudonyms_compile is not None:
            return source.pseudonyms_compile(layout)  # the parties' own, made ahead
        raw, pseudonymise = source.compile(layout), pseudonymiser(key=key, column=name)
        return lambda block: list(map(pseudonymise, raw(block)))

    def sql(b: SqlBuilder, refs: Refs) -> str | None:
        if source.pseudonym_sql is not None:
            return b.pseudonyms(source.pseudonym_sql(b, refs, name))
        raw = source.sql(b, refs) if source.sql is not None else None
        if raw is None:
            return None
        pads = refs.pseudonym_pads()
        if isinstance(raw, Json):
            return b.pseudonyms(b.pseudonym_json(raw, pads, name))
        return b.pseudonyms(b.pseudonym_text(raw, pads, name))

    column = export_column.column
    shown = replace(column, type=T.LIST if column.type == T.LIST else T.TEXT)
    fields = export_column.fields if source.pseudonyms is None else (source.pseudonyms,)
    return replace(export_column, column=shown, fields=fields, compile=compile, sql=sql)


def catalog_for(*, dataset: str, options: Mapping[str, Any], snapshot: Sequence[Mapping[str, Any]]) -> list[Column]:
    """The public shape of a file's columns (the API's column catalog, the file header)."""
    return [c.column for c in export_columns(dataset=dataset, options=options, snapshot=snapshot)]
