"""The column catalog: core case columns, investigation groups, tag columns, and the
investigations dataset. Keys are stable snake_case: integrators build on them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cases.models import (
    CaseStatus,
    Finding,
    IntakeChannel,
    InvestigationStatus,
    Outcome,
    Priority,
    ReporterRelationship,
    RIUType,
    Severity,
)
from config.errors import ApplicationError
from exports.columns_base import Column, ColumnGroup, ColumnType

T = ColumnType
MAX_INVESTIGATIONS = 10
DEFAULT_MAX_INVESTIGATIONS = 3

Extractor = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class CoreColumn:
    """A core column: its public shape, the values it needs fetched and how to read them."""

    column: Column
    fields: tuple[str, ...]  # Case.values() lookups this column reads
    extract: Extractor


def _field(name: str) -> Extractor:
    return lambda row: row[name]


def _choice(name: str, labels: Mapping[str, str]) -> Extractor:
    labels = dict(labels)
    return lambda row: labels.get(row[name], row[name]) if row[name] else None


def _core(
    key: str,
    label: str,
    type_: ColumnType,
    width: int = 16,
    field: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> CoreColumn:
    source = field or key
    extract = _choice(source, labels) if labels is not None else _field(source)
    return CoreColumn(Column(key, label, type_, ColumnGroup.CORE, width), (source,), extract)


def _computed(
    key: str, label: str, type_: ColumnType, fields: tuple[str, ...], extract: Extractor, width: int = 14
) -> CoreColumn:
    return CoreColumn(Column(key, label, type_, ColumnGroup.CORE, width), fields, extract)


def _days(start: Any, end: Any) -> int | None:
    if start is None or end is None:
        return None
    return max(0, (end - start).days)


# ``now`` for "days open" and "overdue" is the export's generation time, injected per job.
def core_columns(now: Any) -> list[CoreColumn]:
    """Every core case column, in file order."""
    return [
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
            lambda r: _days(r["created_at"], r["closed_at"] or now),
        ),
        _computed(
            "days_to_close",
            "Days to close",
            T.INTEGER,
            ("created_at", "closed_at"),
            lambda r: _days(r["created_at"], r["closed_at"]),
        ),
        _computed(
            "is_overdue",
            "Overdue",
            T.BOOLEAN,
            ("due_at", "closed_at"),
            lambda r: None if r["due_at"] is None else r["due_at"] < (r["closed_at"] or now),
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
        _computed("investigation_count", "Investigations", T.INTEGER, ("id",), lambda r: r["_investigation_count"], 8),
        _computed(
            "created_month", "Created month", T.TEXT, ("created_at",), lambda r: r["created_at"].strftime("%Y-%m"), 10
        ),
        _computed("created_year", "Created year", T.INTEGER, ("created_at",), lambda r: r["created_at"].year, 8),
    ]


CORE_KEYS = tuple(c.column.key for c in core_columns(None))

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


def investigation_columns(max_investigations: int, include_overflow: bool) -> list[Column]:
    """Investigation i — Status, — Investigator… for i in 1..max, then the overflow count."""
    columns = [
        Column(f"investigation_{i}_{suffix}", f"Investigation {i} — {label}", type_, ColumnGroup.INVESTIGATION, width)
        for i in range(1, max_investigations + 1)
        for suffix, label, type_, width, _ in INVESTIGATION_FIELDS
    ]
    if include_overflow:
        columns.append(
            Column(
                "investigations_overflow",
                f"Investigations beyond {max_investigations}",
                T.INTEGER,
                ColumnGroup.INVESTIGATION,
                10,
            )
        )
    return columns


def tag_columns(snapshot: Sequence[Mapping[str, Any]], taken: set[str] | None = None) -> list[Column]:
    """One column per tag slot of the job's snapshot, in slot order, labelled by the tag.

    A tag label that repeats a core column's header gets " (tag)" so that spreadsheet
    headers stay unambiguous; the key (``tag_<slot>``) is always unique.
    """
    taken = {label.casefold() for label in taken or set()}
    return [
        Column(
            f"tag_{t['slot']}",
            f"{t['label']} (tag)" if t["label"].casefold() in taken else t["label"],
            TAG_TYPES[t["data_type"]],
            ColumnGroup.TAG,
            18,
        )
        for t in sorted(snapshot, key=lambda t: t["slot"])
    ]


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
    Column("investigation_number", "Investigation number", T.INTEGER, ColumnGroup.INVESTIGATION, 8),
    *[
        Column(f"investigation_{suffix}", f"Investigation {label.lower()}", type_, ColumnGroup.INVESTIGATION, width)
        for suffix, label, type_, width, _ in INVESTIGATION_FIELDS
    ],
]

COLUMN_DEFAULTS: dict[str, Any] = {
    "include_investigations": True,
    "max_investigations": DEFAULT_MAX_INVESTIGATIONS,
    "include_overflow": False,
    "include_tags": True,
    "core": None,
}


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
    return options


def selected_core(options: Mapping[str, Any], now: Any) -> list[CoreColumn]:
    """The core columns an export includes, in the requested order."""
    catalog = core_columns(now)
    if options.get("core") is None:
        return catalog
    by_key = {c.column.key: c for c in catalog}
    return [by_key[k] for k in options["core"]]


def catalog_for(*, dataset: str, options: Mapping[str, Any], snapshot: Sequence[Mapping[str, Any]]) -> list[Column]:
    """The columns of a file, in order, for a dataset, column options and tag snapshot."""

    def tags(before: list[Column]) -> list[Column]:
        if not options.get("include_tags", True):
            return []
        return tag_columns(snapshot, {c.label for c in before})

    if dataset == "investigations":
        by_key = {c.column.key: c.column for c in core_columns(None)}
        case_keys = [
            Column(
                f"case_{k}",
                f"Case {by_key[k].label[0].lower()}{by_key[k].label[1:]}"
                if not by_key[k].label.startswith("Case")
                else by_key[k].label,
                by_key[k].type,
                ColumnGroup.CORE,
                by_key[k].width,
            )
            for k in INVESTIGATION_DATASET_CASE_KEYS
        ]
        base = [*INVESTIGATION_DATASET_OWN, *case_keys]
        return [*base, *tags(base)]
    core = [c.column for c in selected_core(options, None)]
    groups = (
        investigation_columns(
            options.get("max_investigations", DEFAULT_MAX_INVESTIGATIONS), options.get("include_overflow", False)
        )
        if options.get("include_investigations", True)
        else []
    )
    return [*core, *groups, *tags([*core, *groups])]
