"""Reading the database fast: read cases in chunks, with only the needed fields, and
fetch their investigations once per chunk — never a query per row.

Each chunk is its own short statement, keyed on the export's order ``(created_at, id)``
(keyset pagination), never one long cursor: on SQLite a connection that holds a read
snapshot cannot write after another process committed (SQLITE_BUSY at once, whatever the
busy timeout), so a long read would break the worker's own heartbeat as soon as another
job, the tick or django-q2 writes. Memory holds one chunk at a time.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from django.db.models import Q, QuerySet

from cases.models import Case, Investigation
from exports.columns import (
    INVESTIGATION_DATASET_CASE_KEYS,
    INVESTIGATION_FIELDS,
    INVESTIGATION_LABELS,
    CoreColumn,
    core_columns,
    selected_core,
)
from tagging.paths import parse_field_path
from tagging.resolution import compile_tags, row_resolver

CHUNK_SIZE = 2000
RIU_PREFIX = "primary_riu__"


def _local(zone: zoneinfo.ZoneInfo, fields: Sequence[str]) -> Any:
    """A function converting the datetime ``fields`` of a row dict to the zone, in place."""

    def convert(row: dict[str, Any]) -> None:
        for name in fields:
            value = row.get(name)
            if value is not None:
                row[name] = value.astimezone(zone)

    return convert


class RowPlan:
    """What one export reads and how it turns fetched values into file rows."""

    def __init__(
        self,
        *,
        dataset: str,
        options: Mapping[str, Any],
        snapshot: Sequence[Mapping[str, Any]],
        timezone: str,
        now: dt.datetime,
    ) -> None:
        self.dataset = dataset
        self.zone = zoneinfo.ZoneInfo(timezone)
        self.now = now.astimezone(self.zone)
        self.tags = compile_tags(snapshot) if options.get("include_tags", True) else []
        self.resolve_tags = row_resolver(self.tags)
        self.core: list[CoreColumn] = selected_core(options, self.now)
        if dataset == "investigations":
            by_key = {c.column.key: c for c in core_columns(self.now)}
            self.core = [by_key[k] for k in INVESTIGATION_DATASET_CASE_KEYS]
        self.include_investigations = dataset == "investigations" or options.get("include_investigations", True)
        self.max_investigations = options.get("max_investigations", 3) if self.include_investigations else 0
        self.include_overflow = bool(options.get("include_overflow")) and self.include_investigations

        tag_paths = [parse_field_path(t.source_entity, t.field_path) for t in self.tags]
        case_fields = {"id"} | {f for c in self.core for f in c.fields if f != "id"}
        case_fields |= {p.field for p in tag_paths if p.source_entity == "case"}
        riu_fields = {p.field for p in tag_paths if p.source_entity == "riu"}
        case_fields |= {RIU_PREFIX + f for f in riu_fields}
        self.riu_fields = sorted(riu_fields)
        self.case_fields = sorted(case_fields)
        inv_fields = {f for *_, f in INVESTIGATION_FIELDS} if self.include_investigations else set()
        inv_fields |= {p.field for p in tag_paths if p.source_entity == "investigation"}
        self.inv_fields = sorted(inv_fields | {"case_id", "number"})
        self.needs_investigations = bool(
            self.include_investigations or any(p.source_entity == "investigation" for p in tag_paths)
        )
        datetime_fields = {
            "reported_at",
            "created_at",
            "updated_at",
            "due_at",
            "closed_at",
            "primary_riu__received_at",
            "received_at",
        }
        self._local_case = _local(self.zone, [f for f in self.case_fields if f in datetime_fields])
        self._local_inv = _local(self.zone, [f for f in self.inv_fields if f in ("opened_at", "closed_at")])

    # --- reading --------------------------------------------------------------------------

    def _case_chunks(self, cases: QuerySet[Case]) -> Iterator[list[dict[str, Any]]]:
        fields = sorted({*self.case_fields, "created_at"})
        query = cases.order_by("created_at", "id").values(*fields)
        chunk = list(query[:CHUNK_SIZE])
        while chunk:
            last = chunk[-1]
            after = Q(created_at__gt=last["created_at"]) | Q(created_at=last["created_at"], id__gt=last["id"])
            # The next chunk's query runs only when this one was written: no statement stays open.
            following = query.filter(after, created_at__gte=last["created_at"])
            yield chunk
            chunk = list(following[:CHUNK_SIZE]) if len(chunk) == CHUNK_SIZE else []

    def _investigations(self, case_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        by_case: dict[int, list[dict[str, Any]]] = {}
        if not self.needs_investigations:
            return by_case
        query = (
            Investigation.objects.filter(case_id__in=case_ids).order_by("case_id", "number").values(*self.inv_fields)
        )
        for inv in query:
            self._local_inv(inv)
            by_case.setdefault(inv["case_id"], []).append(inv)
        return by_case

    def _entities(self, case: dict[str, Any], investigation: dict[str, Any] | None) -> dict[str, Any]:
        riu = None
        if self.riu_fields:
            riu = {f: case[RIU_PREFIX + f] for f in self.riu_fields}
            if all(v is None for v in riu.values()):
                riu = None
        return {"case": case, "riu": riu, "investigation": investigation}

    # --- rows -----------------------------------------------------------------------------

    def rows(self, cases: QuerySet[Case]) -> Iterator[list[Any]]:
        """File rows, one per case (``cases``) or per investigation (``investigations``)."""
        investigations_dataset = self.dataset == "investigations"
        extractors = [c.extract for c in self.core]
        labels = [(INVESTIGATION_LABELS.get(suffix), field) for suffix, _, _, _, field in INVESTIGATION_FIELDS]
        maximum, overflow = self.max_investigations, self.include_overflow
        empty_group = [None] * len(INVESTIGATION_FIELDS)
        for chunk in self._case_chunks(cases):
            invs = self._investigations([row["id"] for row in chunk])
            for case in chunk:
                self._local_case(case)
                own = invs.get(case["id"], [])
                case["_investigation_count"] = len(own)
                if investigations_dataset:
                    case_values = [extract(case) for extract in extractors]
                    for inv in own:
                        group = [self._inv_value(inv, names, field) for names, field in labels]
                        yield [inv["number"], *group, *case_values, *self.resolve_tags(self._entities(case, inv))]
                    continue
                row = [extract(case) for extract in extractors]
                if maximum or overflow:
                    for i in range(maximum):
                        if i < len(own):
                            row.extend(self._inv_value(own[i], names, field) for names, field in labels)
                        else:
                            row.extend(empty_group)
                    if overflow:
                        row.append(max(0, len(own) - maximum))
                if self.tags:
                    row.extend(self.resolve_tags(self._entities(case, own[-1] if own else None)))
                yield row

    @staticmethod
    def _inv_value(inv: Mapping[str, Any], names: Mapping[str, str] | None, field: str) -> Any:
        value = inv[field]
        if names is not None:
            return names.get(value, value) if value else None
        return value if value != "" else None

    def count(self, cases: QuerySet[Case]) -> int:
        """Rows the file will have (for progress)."""
        if self.dataset == "investigations":
            return Investigation.objects.filter(case__in=cases.values("id")).count()
        return cases.count()


__all__ = ["RowPlan"]
