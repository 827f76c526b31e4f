"""Fast bulk inserts for seeding and benchmarks: COPY on PostgreSQL, executemany elsewhere.

Django's ``bulk_create`` builds a model instance and prepares every value per field, which
caps demo data at a few thousand cases a second. Here rows are plain tuples in a fixed
column order, ids are assigned up front (so children can point at their parents without a
round trip) and values are adapted once per column type.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from django.core.management.color import no_style
from django.db import connection, models


def next_id(model: type[models.Model]) -> int:
    """The first free primary key of ``model``'s table."""
    current = model._default_manager.aggregate(m=models.Max("pk"))["m"]
    return int(current or 0) + 1


def _adapter(field: models.Field[Any, Any], postgres: bool) -> Callable[[Any], Any] | None:
    if isinstance(field, models.JSONField):
        return lambda v: None if v is None else json.dumps(v, separators=(",", ":"))
    if postgres:
        return None  # psycopg's COPY dumps datetimes, Decimals and bools itself.
    if isinstance(field, models.DateTimeField):
        # What Django's SQLite backend stores: naive UTC text ("2026-01-02 03:04:05.123456").
        return lambda v: None if v is None else v.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")
    if isinstance(field, models.DecimalField):
        return lambda v: None if v is None else str(Decimal(v))
    return None


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Insert tuples whose values follow ``fields`` (model field names) into ``model``'s table."""
    meta = model._meta
    field_objs = [meta.get_field(name) for name in fields]
    columns = [str(f.column) for f in field_objs]  # type: ignore[union-attr]
    postgres = connection.vendor == "postgresql"
    adapters = [(i, a) for i, f in enumerate(field_objs) if (a := _adapter(f, postgres)) is not None]  # type: ignore[arg-type]
    qn = connection.ops.quote_name
    table = qn(str(meta.db_table))
    column_sql = ", ".join(qn(c) for c in columns)

    def adapted(row: Sequence[Any]) -> Sequence[Any]:
        if not adapters:
            return row
        values = list(row)
        for i, adapt in adapters:
            values[i] = adapt(values[i])
        return values

    count = 0
    with connection.cursor() as cursor:
        if postgres:
            with cursor.cursor.copy(f"COPY {table} ({column_sql}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(adapted(row))
                    count += 1
        else:
            sql = f"INSERT INTO {table} ({column_sql}) VALUES ({', '.join(['%s'] * len(columns))})"
            batch: list[Sequence[Any]] = []
            for row in rows:
                batch.append(adapted(row))
                if len(batch) >= 5000:
                    cursor.executemany(sql, batch)
                    count += len(batch)
                    batch = []
            if batch:
                cursor.executemany(sql, batch)
                count += len(batch)
    return count


def reset_sequences(*models_: type[models.Model]) -> None:
    """Move PostgreSQL's id sequences past ids assigned by ``insert_rows``."""
    statements = connection.ops.sequence_reset_sql(no_style(), list(models_))
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
