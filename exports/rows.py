"""Reading the database fast: an export's columns compiled once into a row function over
plain tuples, cases read in chunks with only the needed fields, and their investigations
fetched once per chunk — never a query per row, never a dict per row.

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
from exports.columns import ExportColumn, Layout, export_columns
from exports.columns_base import Column

CHUNK_SIZE = 2000


class RowPlan:
    """One export's columns, compiled: what it reads and the function that makes its rows."""

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
        self.export_columns: list[ExportColumn] = export_columns(dataset=dataset, options=options, snapshot=snapshot)
        self.columns: list[Column] = [c.column for c in self.export_columns]
        zone = zoneinfo.ZoneInfo(timezone)
        # id and created_at lead every case tuple: the keyset reads them back.
        case_fields = ["id", "created_at"]
        case_fields += sorted({f for c in self.export_columns for f in c.fields} - set(case_fields))
        self.case_fields = case_fields
        inv_fields = sorted({f for c in self.export_columns for f in c.investigation_fields} - {"case_id"})
        self.needs_investigations = dataset == "investigations" or bool(inv_fields) or self._counts_investigations()
        self.inv_fields = ["case_id", *inv_fields]
        layout = Layout(
            case={f: i for i, f in enumerate(self.case_fields)},
            investigation={f: i for i, f in enumerate(self.inv_fields)},
            zone=zone,
            now=now.astimezone(zone),
        )
        self.extractors = [c.compile(layout) for c in self.export_columns]

    def _counts_investigations(self) -> bool:
        keys = {c.column.key for c in self.export_columns}
        return "investigation_count" in keys or "investigations_overflow" in keys

    # --- reading --------------------------------------------------------------------------

    def _case_chunks(self, cases: QuerySet[Case]) -> Iterator[list[tuple[Any, ...]]]:
        query = cases.order_by("created_at", "id").values_list(*self.case_fields)
        chunk = list(query[:CHUNK_SIZE])
        while chunk:
            last_id, last_created = chunk[-1][0], chunk[-1][1]
            after = Q(created_at__gt=last_created) | Q(created_at=last_created, id__gt=last_id)
            # The next chunk's query runs only when this one was written: no statement stays open.
            following = query.filter(after, created_at__gte=last_created)
            yield chunk
            chunk = list(following[:CHUNK_SIZE]) if len(chunk) == CHUNK_SIZE else []

    def _investigations(self, case_ids: list[int]) -> dict[int, list[tuple[Any, ...]]]:
        by_case: dict[int, list[tuple[Any, ...]]] = {}
        if not self.needs_investigations:
            return by_case
        query = Investigation.objects.filter(case_id__in=case_ids).order_by("case_id", "number")
        for inv in query.values_list(*self.inv_fields):
            by_case.setdefault(inv[0], []).append(inv)
        return by_case

    # --- rows -----------------------------------------------------------------------------

    def rows(self, cases: QuerySet[Case]) -> Iterator[list[Any]]:
        """File rows, one per case (``cases``) or per investigation (``investigations``)."""
        extractors = self.extractors
        none: list[tuple[Any, ...]] = []
        per_investigation = self.dataset == "investigations"
        for chunk in self._case_chunks(cases):
            invs = self._investigations([case[0] for case in chunk])
            for case in chunk:
                own = invs.get(case[0], none)
                if per_investigation:
                    for inv in own:
                        yield [extract(case, own, inv) for extract in extractors]
                    continue
                latest = own[-1] if own else None
                yield [extract(case, own, latest) for extract in extractors]

    def count(self, cases: QuerySet[Case]) -> int:
        """Rows the file will have (for progress)."""
        if self.dataset == "investigations":
            return Investigation.objects.filter(case__in=cases.values("id")).count()
        return cases.count()


__all__ = ["RowPlan"]
