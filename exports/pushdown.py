"""Exports at database speed on PostgreSQL: the whole row rendered in SQL (CSV cells, a
JSON line's values, typed values for Parquet, a SpreadsheetML row for XLSX), streamed by
COPY.

The export's compiled columns (``exports.columns``) each give their CSV text as a SQL
expression (``exports.sql``); the case filters are the queryset's own WHERE clause. One
``COPY (SELECT …) TO STDOUT (FORMAT csv)`` on a connection of its own streams the rows
(the worker's connection stays free for heartbeats). What COPY writes differently from
Python's ``csv`` module is mended on the way: the UTF-8 BOM and header come first, records
end with CRLF (line feeds inside quoted values stay as they are), and empty values are
unquoted (every expression is NULL when empty). The Python path (``exports.rows``) is the
reference: a test writes the same data both ways and compares the bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from queue import Empty, SimpleQueue
from typing import Any, BinaryIO, cast

from django.conf import settings
from django.db import connection
from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from cases.models import RIU, Case, Investigation, Party
from exports.columns import party_lookup
from exports.columns_base import Column, ColumnGroup, ColumnType
from exports.party_pseudonyms import PADS_SQL, PADS_TABLE, load_pads, pseudonym_stamp, stored_pseudonym
from exports.rows import RowPlan
from exports.sql import WHITESPACE, Json, SqlBuilder, SqlFormat, XlsxSql
from exports.tempfiles import temporary_dir

RIU_PREFIX = "primary_riu__"
BLOCK_BYTES = 1 << 20
FRAMED_BLOCK_BYTES = 1 << 16  # a framed block's values are split into a bytes object each
PART_ROWS = 25_000  # rows per part: a part's sort stays in memory
COPY_WORK_MEM = "64MB"
COPY_RANDOM_PAGE_COST = 1.1  # at most: data in memory or on SSD, as a PostgreSQL server's usually is


class ExportStopped(Exception):
    """A part's COPY was stopped because the export was cancelled or failed elsewhere."""


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Refs:
    """Column references in the pushdown query; records which investigation values are used."""

    def __init__(self, builder: SqlBuilder, now: dt.datetime, pseudonym_key: bytes | None = None) -> None:
        self.builder = builder
        self.case_table = _quoted(Case._meta.db_table)
        self.now = f"{builder.param(now)}::timestamptz"
        self.nth_fields: set[tuple[int, str]] = set()
        self.latest_fields: set[str] = set()
        self.party_fields: set[tuple[str, str, bool]] = set()
        self.party_pseudonym_fields: set[tuple[str, str, bool, str]] = set()
        self.counted = False
        self.values: list[str] = []
        self.documents: list[str] = []
        self._pseudonym_key = pseudonym_key

    def value(self, expression: str) -> str:
        """``expression`` computed once per row (tag JSON values are read by many branches)."""
        if expression not in self.values:
            self.values.append(expression)
        return f'tv."v{self.values.index(expression) + 1}"'

    def json(self, found: str) -> Json:
        """The JSON value ``found`` (a path walked in a document), its type and its text, each
        computed once per row: the walk once, then type and text from its result."""
        if found not in self.documents:
            self.documents.append(found)
        j = f'tj."j{self.documents.index(found) + 1}"'
        return Json(j, self.value(f"jsonb_typeof({j})"), self.value(f"({j} #>> '{{}}')"))

    def case(self, lookup: str) -> str:
        if lookup.startswith(RIU_PREFIX):
            return f"r.{_quoted(lookup.removeprefix(RIU_PREFIX))}"
        if lookup == "assignee__username":
            return 'u."username"'
        return f"{self.case_table}.{_quoted(lookup)}"

    def nth(self, n: int, field: str) -> str:
        self.nth_fields.add((n, field))
        return f"iv.{_quoted(f'i{n}_{field}')}"

    def latest(self, field: str) -> str:
        self.latest_fields.add(field)
        return f"iv.{_quoted(f'l_{field}')}"

    def count(self) -> str:
        self.counted = True
        return "coalesce(iv.n, 0)"

    def party(self, role: str, field: str, *, many: bool) -> str:
        self.party_fields.add((role, field, many))
        return f"pt.{_quoted(party_lookup(role, field, many=many))}"

    def party_pseudonyms(self, role: str, field: str, *, many: bool, column: str) -> str:
        """The pseudonyms of the case's people: made once per party in the parties' join."""
        self.party_pseudonym_fields.add((role, field, many, column))
        return f"pt.{_quoted(party_lookup(role, field, many=many, pseudonyms=True))}"

    def pseudonym_pads(self) -> tuple[str, str]:
        """The HMAC's padded keys, read from the connection's pads table (``load_pads``):
        each an uncorrelated sub-query, which PostgreSQL evaluates once per statement.

        The key is never part of a statement: psycopg binds a COPY's parameters into its
        text, and PostgreSQL logs the text of a statement that fails (a cancelled or timed
        out part), shows it in ``pg_stat_activity`` and hands it to any statement log."""
        self.pseudonym_stamp()  # no key, no pseudonyms
        return PADS_SQL

    def pseudonym_stamp(self) -> str:
        """The stamp of the pseudonyms stored with this key (``exports.party_pseudonyms``)."""
        if self._pseudonym_key is None:
            raise ValueError("Pseudonymised columns need the organization's pseudonym key.")
        return pseudonym_stamp(self._pseudonym_key)

    @property
    def needs_investigations(self) -> bool:
        return self.counted or bool(self.nth_fields) or bool(self.latest_fields)


Bound = dt.datetime | None


def export_query(
    plan: RowPlan,
    cases: QuerySet[Case],
    *,
    format: SqlFormat,
    now: dt.datetime,
    start: Bound = None,
    stop: Bound = None,
) -> tuple[str, dict[str, Any]] | None:
    """The whole row of each case (CSV cells, a JSON line's values, typed values, or a
    sheet row) as one parameterised query, or None when a column has no SQL rendering (the
    export then runs in Python).

    ``start`` (inclusive) and ``stop`` (exclusive) cut the file, in the order of
    ``created_at``, into parts that connections of their own write side by side.
    """
    if plan.dataset != "cases":
        return None
    builder = XlsxSql() if format == "xlsx" else SqlBuilder(format)
    refs = _Refs(builder, now, plan.pseudonym_key)
    expressions = []
    for export_column in plan.export_columns:
        expression = export_column.sql(builder, refs) if export_column.sql is not None else None
        if expression is None:
            return None
        expressions.append(expression)
    query = cases.query.chain()
    where, where_params = query.get_compiler(using=cases.db).compile(query.where)
    where = _named(builder, where, where_params)
    case_table = refs.case_table
    # A plain range the planner estimates well: a part is small, so the investigations and
    # parties are looked up by case (a row comparison on (created_at, id), estimated as its
    # first column, once led it to a nested loop over 25,000 × 25,000 rows).
    if start is not None:
        where += f" AND {case_table}.created_at >= {builder.param(start)}::timestamptz"
    if stop is not None:
        where += f" AND {case_table}.created_at < {builder.param(stop)}::timestamptz"
    joins = [
        f"LEFT JOIN {_quoted(RIU._meta.db_table)} r ON r.id = {case_table}.primary_riu_id",
        f'LEFT JOIN "auth_user" u ON u.id = {case_table}.assignee_id',
    ]
    if refs.needs_investigations:
        joins.append(_investigations_join(refs, case_table, where))
    if refs.party_fields or refs.party_pseudonym_fields:
        joins.append(_parties_join(builder, refs, case_table, where))
    if refs.documents:
        found = ", ".join(f'{expression} AS "j{i}"' for i, expression in enumerate(refs.documents, 1))
        joins.append(f"CROSS JOIN LATERAL (SELECT {found} OFFSET 0) tj")
    if refs.values:
        # OFFSET 0 keeps PostgreSQL from inlining the values back into every use.
        computed = ", ".join(f'{expression} AS "v{i}"' for i, expression in enumerate(refs.values, 1))
        joins.append(f"CROSS JOIN LATERAL (SELECT {computed} OFFSET 0) tv")
    if isinstance(builder, XlsxSql):
        joins += builder.text_stages()
    # One text per row (a <row>), joined once: a chain of || copies the growing row at
    # every step.
    if format == "xlsx":
        expressions = [_joined(["'<row>'", *expressions, "'</row>'"])]
    if format == "jsonl":
        # The JSON values alone: the keys are laid around them as the rows stream
        # (``json_lines``), which costs less than sending them 93 times a row. Named, for
        # COPY to quote the strings' columns (``json_copy``).
        expressions = [f'{expression} AS "c{i}"' for i, expression in enumerate(expressions, 1)]
    sql = (
        f"SELECT {', '.join(expressions)} FROM {case_table} {' '.join(joins)} "
        f"WHERE {where} ORDER BY {case_table}.created_at, {case_table}.id"
    )
    return sql, builder.params


def _joined(parts: list[str]) -> str:
    """One text of ``parts`` (never NULL), built in a single pass."""
    return f"array_to_string(ARRAY[{', '.join(parts)}]::text[], '')"


def _named(builder: SqlBuilder, sql: str, params: Any) -> str:
    """Django's ``%s`` placeholders as named ones of ``builder``."""
    pieces = sql.split("%s")
    if len(pieces) != len(params) + 1:
        raise ValueError("unexpected placeholders in the filter SQL")
    out = [pieces[0]]
    for value, piece in zip(params, pieces[1:], strict=True):
        out += [builder.param(value), piece]
    return "".join(out)


def _investigations_join(refs: _Refs, case_table: str, where: str) -> str:
    """One row per case: the count, the n-th investigations' fields, the latest one's.

    The inner query reads the case's investigations sorted by case and number, so each
    field's values reach their aggregate in that order (see ``_parties_join``): the n-th
    investigation's value is element n of the field's ``array_agg``, the latest's the last.
    PostgreSQL keeps one ``array_agg`` per field however many elements are read of it."""
    fields = sorted({field for _, field in refs.nth_fields} | refs.latest_fields)

    def values(field: str) -> str:
        return f"(array_agg(q.{_quoted(field)}))"

    aggregates = ["count(*) AS n"]
    aggregates += [f"{values(field)}[{n + 1:d}] AS {_quoted(f'i{n}_{field}')}" for n, field in sorted(refs.nth_fields)]
    aggregates += [f"{values(field)}[count(*)] AS {_quoted(f'l_{field}')}" for field in sorted(refs.latest_fields)]
    investigations = _quoted(Investigation._meta.db_table)
    rows = (
        f"SELECT x.case_id{''.join(f', x.{_quoted(field)}' for field in fields)} FROM {investigations} x "
        f"WHERE x.case_id IN (SELECT {case_table}.id FROM {case_table} WHERE {where}) ORDER BY x.case_id, x.number"
    )
    return (
        f"LEFT JOIN (SELECT q.case_id, {', '.join(aggregates)} FROM ({rows}) q GROUP BY q.case_id) iv "
        f"ON iv.case_id = {case_table}.id"
    )


def _parties_join(builder: SqlBuilder, refs: _Refs, case_table: str, where: str) -> str:
    """One row per case: the first party's fields of a role, and the lists of every
    non-blank field of the parties in a role, in the order they were recorded.

    The inner query reads the case's parties sorted by case and id, and the aggregates
    take their rows in that order: an aggregate receives its rows in the order of a sorted
    sub-query it alone reads (PostgreSQL's manual, "Aggregate Expressions"), so none needs
    an ``ORDER BY`` of its own, which PostgreSQL 15 would pay for with a sort per case and
    aggregate (5 % of a part's time). The sort also keeps the sub-query from being inlined
    into every aggregate that reads it. A role's first party is the first element of its
    values. A pseudonym is the party's stored one where its stamp is current, else made in
    the rows of its role only (``exports.party_pseudonyms``); for a field no pseudonym is
    stored for, a list value is normalised once in the rows of its role and hashed once
    inside the aggregation, a first party's once per case."""
    spaces = builder.param("".join(map(chr, WHITESPACE)))
    inner = ["p.case_id", "p.id", "p.role"]
    aggregates = []

    def first(role: str, value: str) -> str:
        """``value`` in the role's first party's row (NULL when the case has none)."""
        return f"(array_agg({value}) FILTER (WHERE q.role = {builder.param(role)}::text))[1]"

    def read(field: str) -> str:
        if f"p.{_quoted(field)}" not in inner:
            inner.append(f"p.{_quoted(field)}")
        return f"q.{_quoted(field)}"

    for role, field, many, column in sorted(refs.party_pseudonym_fields):
        name = _quoted(party_lookup(role, field, many=many, pseudonyms=True))
        # Each of the role's parties' pseudonym, stored or made, in the rows of the role only.
        pseudonym = stored_pseudonym(builder, "p", role, field, column, refs.pseudonym_stamp(), refs.pseudonym_pads())
        s = _quoted(f"s:{role}:{field}")
        inner.append(f"CASE WHEN p.role = {builder.param(role)}::text THEN {pseudonym} END AS {s}")
        aggregate = f"string_agg(q.{s}, '; ')" if many else first(role, f"q.{s}")
        aggregates.append(f"{aggregate} AS {name}")
    for role, field, many in sorted(refs.party_fields):
        name, value = _quoted(party_lookup(role, field, many=many)), read(field)
        if not many:
            aggregates.append(f"{first(role, value)} AS {name}")
            continue
        aggregates.append(
            f"array_agg({value}) FILTER (WHERE q.role = {builder.param(role)}::text "
            f"AND btrim({value}, {spaces}::text) <> '') AS {name}"
        )
    rows = (
        f"SELECT {', '.join(inner)} FROM {_quoted(Party._meta.db_table)} p "
        f"WHERE p.case_id IN (SELECT {case_table}.id FROM {case_table} WHERE {where}) ORDER BY p.case_id, p.id"
    )
    return (
        f"LEFT JOIN (SELECT q.case_id, {', '.join(aggregates)} FROM ({rows}) q GROUP BY q.case_id) pt "
        f"ON pt.case_id = {case_table}.id"
    )


def _icu_available() -> bool:
    """Whether PostgreSQL has its ICU root collation (built with ICU, as most are)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'")
        return cursor.fetchone() is not None


def pushdown_enabled() -> bool:
    """SQL pushdown is on for PostgreSQL unless ``EXPORT_SQL_PUSHDOWN`` is False."""
    return connection.vendor == "postgresql" and bool(getattr(settings, "EXPORT_SQL_PUSHDOWN", True))


def copy_write(
    *,
    plan: RowPlan,
    cases: QuerySet[Case],
    format: str,
    stream: BinaryIO,
    timezone: str,
    now: dt.datetime,
    total: int,
    about: list[tuple[str, str]] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int | None:
    """Write a CSV, JSONL, Parquet or XLSX file through COPY; returns the row count, or
    None when the export cannot be pushed down (nothing is written then).

    Files are cut into parts of about ``PART_ROWS`` rows at ``created_at`` boundaries, read
    by a pool of ``EXPORT_COPY_CONNECTIONS`` connections (a PostgreSQL backend each: the
    work is the database's) into temporary files. This thread lays each part into the file
    once it and those before it are written, while the connections write the next ones,
    and reports progress while it waits (so a cancel is noticed in time).
    Parquet parts are typed CSV that pyarrow's C++ reader turns into row groups; XLSX
    parts are the sheets' rows, already SpreadsheetML, laid into the workbook; JSONL parts
    are the rows' JSON values, framed with their keys as they are laid in.
    """
    if format not in ("csv", "jsonl", "parquet", "xlsx"):
        return None
    if plan.pseudonymises and not _icu_available():
        return None  # pseudonyms need Unicode lower-casing the database cannot do here
    sql_format = cast(SqlFormat, format)
    if export_query(plan, cases, format=sql_format, now=now) is None:
        return None
    if format == "csv":
        from exports.writers.cells import spreadsheet_text

        header = io.StringIO()
        csv.writer(header, dialect="excel", lineterminator="\r\n").writerow(
            [spreadsheet_text(column.label) for column in plan.columns]
        )
        stream.write(b"\xef\xbb\xbf" + header.getvalue().encode("utf-8", errors="replace"))
    # Inside a transaction (a caller's atomic block) other connections would not see its
    # rows: one part, on this connection. Otherwise parts on connections of their own.
    in_transaction = connection.in_atomic_block
    bounds = [None, None] if in_transaction else part_bounds(cases, total)
    stop = threading.Event()
    parts: list[_Part] = []
    strings = json_strings(plan.columns) if format == "jsonl" else []
    for lo, hi in itertools.pairwise(bounds):
        compiled = export_query(plan, cases, format=sql_format, now=now, start=lo, stop=hi)
        assert compiled is not None  # the same columns rendered above
        parts.append(_Part(compiled, format, stop, strings))
    pool: list[_Connection] = []
    about = [*(about or [])]
    try:
        if in_transaction:
            parts[0].run_in_transaction(timezone, plan.pseudonym_key)
            parts[0].done.set()
        else:
            queue: SimpleQueue[_Part] = SimpleQueue()
            for part in parts:
                queue.put(part)
            connections = max(1, int(getattr(settings, "EXPORT_COPY_CONNECTIONS", 2)))
            pool = [_Connection(queue, timezone, stop, plan.pseudonym_key) for _ in range(min(connections, len(parts)))]
            for worker in pool:
                worker.start()
        # Each part is laid into the file as soon as it and those before it are written,
        # while the connections write the next ones.
        done = _in_order(parts, pool, on_progress)
        if format == "parquet":
            rows = _parquet_from_parts(plan, (part.output for part in done), stream, timezone, about)
        elif format == "xlsx":
            from exports.writers.xlsx_writer import XlsxWriter, workbook_write

            def blocks() -> Iterator[bytes]:
                for part in done:
                    yield from line_blocks(part.output)
                    part.output.close()  # its disk space back as soon as it is laid in
                # The About sheet is written after the rows, as the Python path does.
                about.append(("Rows", f"{sum(part.rows for part in parts):,}"))

            workbook_write(
                stream=stream, columns=plan.columns, xml=blocks(), about=about, limit=XlsxWriter.max_rows_per_sheet
            )
            rows = sum(part.rows for part in parts)
        else:
            # A CSV part is the file's own bytes. A JSONL part holds its rows' values as the
            # database wrote them (a third of the lines' size): the keys are laid around them
            # here, as they go into the file.
            frame = json_frame(plan.columns) if format == "jsonl" else None
            for part in done:
                if frame is None:
                    shutil.copyfileobj(part.output, stream, BLOCK_BYTES)
                else:
                    for block in line_blocks(part.output, FRAMED_BLOCK_BYTES):
                        stream.write(json_lines(block, frame))
                part.output.close()
            rows = sum(part.rows for part in parts)
    finally:
        stop.set()
        for worker in pool:
            worker.join()
        for part in parts:
            part.output.close()
    if on_progress is not None:
        on_progress(rows)
    return rows


def _in_order(
    parts: list[_Part], pool: list[_Connection], on_progress: Callable[[int], None] | None
) -> Iterator[_Part]:
    """The parts in the file's order, each once it is written (its output rewound). The
    rows written so far are reported before each part and while waiting for it (a report
    may raise: cancelled); a connection's error is raised."""
    for part in parts:
        while True:
            if on_progress is not None:
                on_progress(sum(p.rows for p in parts))
            if part.done.wait(timeout=0.5):
                break
            errors = [worker.error for worker in pool if worker.error is not None]
            if errors:  # the cause, not a connection that stopped because of it
                raise next((e for e in errors if not isinstance(e, ExportStopped)), errors[0])
            # A connection may write the part and end between the wait and this look.
            if not any(worker.is_alive() for worker in pool) and not part.done.is_set():
                raise RuntimeError("the export's database connections stopped before its last part")
        part.output.seek(0)
        yield part


def line_blocks(file: BinaryIO, size: int | None = None) -> Iterator[bytes]:
    """A file's whole lines, about ``size`` bytes (``BLOCK_BYTES``) at a time."""
    while block := file.read(size or BLOCK_BYTES):
        yield block + file.readline()


def _parquet_from_parts(
    plan: RowPlan, parts: Iterable[Any], stream: BinaryIO, timezone: str, about: list[tuple[str, str]]
) -> int:
    """Turn the parts' typed CSV into a Parquet file as the Parquet writer lays it out:
    the same schema (datetimes in the organization's zone once the first rows hold one),
    row groups of ``ParquetWriter.row_group_rows``."""
    # Imported here: web processes never load pyarrow.
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from exports.writers.parquet_writer import ParquetWriter, arrow_type, parquet_write

    columns = plan.columns
    datetimes = [c.key for c in columns if c.group != ColumnGroup.TAG and c.type == ColumnType.DATETIME]
    read_types = {c.key: pa.int64() if c.key in datetimes else arrow_type(c, "UTC") for c in columns}
    options = {
        "read_options": pacsv.ReadOptions(column_names=[c.key for c in columns], block_size=2 << 20),
        "parse_options": pacsv.ParseOptions(newlines_in_values=True),
        "convert_options": pacsv.ConvertOptions(
            column_types=read_types,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    }
    batches = (batch for part in parts for batch in pacsv.open_csv(part, **options))
    head: list[pa.RecordBatch] = []
    seen = 0
    while seen < ParquetWriter.batch_rows and (batch := next(batches, None)) is not None:
        head.append(batch)
        seen += batch.num_rows
    # The Parquet writer names the zone of the first datetime among its first rows.
    first = pa.Table.from_batches(head, schema=head[0].schema).slice(0, ParquetWriter.batch_rows) if head else None
    found = first is not None and any(first.column(key).null_count < first.num_rows for key in datetimes)
    zone = timezone if found else "UTC"
    schema = pa.schema([pa.field(c.key, arrow_type(c, zone)) for c in columns])

    def typed(batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = [
            batch.column(i).cast(schema.field(i).type) if c.key in datetimes else batch.column(i)
            for i, c in enumerate(columns)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    rows = 0

    def records() -> Iterator[pa.RecordBatch]:
        nonlocal rows
        for batch in itertools.chain(head, batches):
            rows += batch.num_rows
            yield typed(batch)
        about.append(("Rows", f"{rows:,}"))  # read once the batches are exhausted

    parquet_write(
        stream,
        schema,
        records(),
        about,
        row_group_rows=ParquetWriter.row_group_rows,
        compression=ParquetWriter.compression,
    )
    return rows


def part_bounds(cases: QuerySet[Case], total: int, rows: int | None = None) -> list[Bound]:
    """Boundaries cutting the file into parts of about ``rows`` rows (``PART_ROWS``):
    ``[None, t1, …, None]``, each a ``created_at`` that starts a part.

    Cases created at the same instant stay in one part (a part may be larger, or there
    may be fewer), so a part is a plain range of ``created_at``. Small parts keep each
    part's sort (the file's order) in memory; the ``created_at`` of every ``PART_ROWS``-th
    row comes from one query over the keys alone.
    """
    rows = rows or PART_ROWS
    if total <= rows:
        return [None, None]
    starts = list(range(rows + 1, total + 1, rows))
    # Numbered in the order of created_at alone, as its index gives them: the order among
    # cases created at the same instant does not move a boundary.
    ranked = cases.annotate(n=Window(RowNumber(), order_by=F("created_at").asc()))
    keys = ranked.filter(n__in=starts).order_by("created_at").values_list("created_at", flat=True)
    return [None, *dict.fromkeys(keys), None]


class _Part:
    """One part of the file: its query, and its rows in a temporary file."""

    def __init__(
        self,
        compiled: tuple[str, dict[str, Any]],
        format: str,
        stop: threading.Event,
        strings: Sequence[bool] = (),
    ) -> None:
        self.sql, self.params = compiled
        self.format = format
        self.strings = strings  # JSONL: which columns' values are strings
        self.output = tempfile.TemporaryFile(dir=temporary_dir())  # noqa: SIM115
        self.rows = 0
        self.stop = stop
        self.done = threading.Event()  # set once its rows are all in ``output``

    def run_in_transaction(self, timezone: str, pseudonym_key: bytes | None) -> None:
        """Run on the caller's connection, in the caller's transaction (so the export sees
        what that transaction sees), restoring the settings it changes for the COPY and
        dropping the pads it loads."""
        with connection.cursor() as wrapper:
            cursor = wrapper.cursor
            # The plan settings of the part connections (see _Connection.run); the order of
            # the aggregated parties and investigations needs a plan without parallel workers.
            names = ("TimeZone", "jit", "enable_memoize", "max_parallel_workers_per_gather")
            cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in names))
            saved = cursor.fetchone()
            assign = "SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name in names)
            cursor.execute(assign, [timezone, "off", "off", "0"])
            try:
                if pseudonym_key is not None:
                    load_pads(cursor, pseudonym_key)
                self.copy(cursor)
            finally:
                cursor.execute(assign, list(saved))
                if pseudonym_key is not None:
                    cursor.execute(f"DROP TABLE IF EXISTS {PADS_TABLE}")

    def copy(self, cursor: Any) -> None:
        if self.format == "csv":
            _copy_csv(cursor, f"COPY ({self.sql}) TO STDOUT (FORMAT csv)", self.params, self)
        elif self.format == "parquet":  # typed CSV for pyarrow: NULL unquoted, "" quoted
            _copy_lines(cursor, f"COPY ({self.sql}) TO STDOUT (FORMAT csv)", self.params, self)
        elif self.format == "jsonl":
            _blocks(cursor, json_copy(self.sql, self.strings), self.params, self, self._json_rows)
        else:
            # A sheet row never holds a raw control character: with \x01 as the quote and
            # \x02 as the delimiter, COPY writes each as it is, a row a line.
            statement = f"COPY ({self.sql}) TO STDOUT (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
            _copy_lines(cursor, statement, self.params, self)

    def _json_rows(self, rows: list[Any]) -> None:
        self.output.write(json_rows(rows, self.strings))
        self.rows += len(rows)


class _Connection(threading.Thread):
    """A database connection of its own, writing parts from the queue until none is left."""

    def __init__(
        self, queue: SimpleQueue[_Part], timezone: str, stop: threading.Event, pseudonym_key: bytes | None
    ) -> None:
        super().__init__(daemon=True)
        self.queue, self.timezone, self.stop = queue, timezone, stop
        self.pseudonym_key = pseudonym_key
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            own = connection.get_new_connection(connection.get_connection_params())
            try:
                with own.cursor() as cursor:
                    # The zone renders datetimes (to_char) as the Python path's astimezone()
                    # does; a part's sort fits in work_mem; JIT only slows these queries; the
                    # parts are the parallelism (a parallel plan would have each of its
                    # workers aggregate every investigation and party again, and could
                    # hand the aggregates their rows out of order); and a part's
                    # investigations, parties and RIUs are looked up by its cases, not read
                    # whole for each part (the default random_page_cost, made for spinning
                    # disks, has PostgreSQL scan the 3.6M parties of 1M cases 40 times).
                    # A Memoize node over the per-row stages only hashes every row's values
                    # to find no repeat (5–7 % of a part's time).
                    cursor.execute(
                        "SELECT set_config('TimeZone', %s, false), set_config('jit', 'off', false), "
                        "set_config('enable_memoize', 'off', false), "
                        "set_config('work_mem', %s, false), set_config('max_parallel_workers_per_gather', '0', false), "
                        "set_config('random_page_cost', "
                        "least(current_setting('random_page_cost')::float8, %s)::text, false)",
                        [self.timezone, COPY_WORK_MEM, COPY_RANDOM_PAGE_COST],
                    )
                    if self.pseudonym_key is not None:
                        load_pads(cursor, self.pseudonym_key)  # gone with the connection
                    while not self.stop.is_set():
                        try:
                            part = self.queue.get_nowait()
                        except Empty:
                            return
                        part.copy(cursor)
                        part.done.set()
            finally:
                own.close()
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc
            self.stop.set()


def _copy_csv(cursor: Any, statement: str, params: dict[str, Any], part: _Part) -> None:
    """Stream COPY's CSV, ending records with CRLF as Python's csv module does.

    A block holds whole records (COPY sends one message per row). When it holds as many
    line feeds as records, each ends one; otherwise a quoted value holds a line feed, and
    only those outside quotes end records: split at the quotes (doubled inside a quoted
    value), the even pieces are outside.
    """
    write = part.output.write

    def flush(records: list[Any]) -> None:
        data, rows = b"".join(records), len(records)
        out = data.replace(b"\n", b"\r\n")
        if len(out) - len(data) != rows:
            pieces = data.split(b'"')
            pieces[0::2] = [piece.replace(b"\n", b"\r\n") for piece in pieces[0::2]]
            out = b'"'.join(pieces)
        write(out)
        part.rows += rows

    _blocks(cursor, statement, params, part, flush)


JsonFrame = tuple[bytes, list[bytes]]
# What a raw text may hold that JSON escapes and no other value holds: the control
# characters (\x02 parts values and \n ends a row: those are counted instead).
_CONTROLS = bytes(c for c in range(0x20) if c not in (0x02, 0x0A))
_FIELD = re.compile(rb'"((?:[^"\\]|\\.)*)"|[^\x02\n"]*', re.S)  # a value COPY quoted, or one it did not
_COPY_ESCAPED = re.compile(rb"\\(.)", re.S)


def json_strings(columns: Sequence[Column]) -> list[bool]:
    """Which of a JSON line's values are strings whenever they are not null: all but the
    numbers and booleans (a number or boolean tag's values are of more than one kind)."""
    others = (ColumnType.INTEGER, ColumnType.DECIMAL, ColumnType.NUMBER, ColumnType.BOOLEAN)
    return [column.type not in others for column in columns]


def json_copy(sql: str, strings: Sequence[bool]) -> str:
    """The COPY writing a row's JSON values: ``\x02`` between them, a row a line.

    A column of strings gives its raw text, which COPY quotes and escapes as JSON does:
    ``"`` and ``\\`` get a ``\\`` in front (CSV quoting with ``\\`` as the escape), NULL is
    ``null`` (a string "null" is quoted). That is ``to_json``'s work at a fraction of its
    cost (it looks the type up again for every value). The other columns' values are JSON
    already, never holding ``"`` but inside a string of a column of mixed kinds, which COPY
    quotes too. ``json_rows`` mends what COPY writes otherwise."""
    quoted = ", ".join(f'"c{i}"' for i, string in enumerate(strings, 1) if string)
    force = f", FORCE_QUOTE ({quoted})" if quoted else ""
    return f"COPY ({sql}) TO STDOUT (FORMAT csv, DELIMITER E'\\x02', QUOTE '\"', ESCAPE E'\\\\', NULL 'null'{force})"


def json_rows(rows: list[Any], strings: Sequence[bool]) -> bytes:
    """COPY's rows (``json_copy``) as rows of JSON values: unchanged where no value holds a
    control character and none is a string COPY quoted in a column of mixed kinds (a
    quoted value starting with ``\\"``, as a string starting with a quote does too). Any
    other row is read value by value."""
    data = b"".join(rows)
    if _plain(data, len(rows), len(strings)):
        return data
    return b"".join(row if _plain(row := bytes(raw), 1, len(strings)) else _json_row(row, strings) for raw in rows)


def _plain(data: bytes, rows: int, values: int) -> bool:
    return (
        data.count(b"\n") == rows
        and data.count(b"\x02") == rows * (values - 1)
        and b'"\\"' not in data
        and len(data.translate(None, _CONTROLS)) == len(data)
    )


def _json_row(row: bytes, strings: Sequence[bool]) -> bytes:
    """One row of ``json_copy``'s, read value by value: a string as the JSONL writer
    writes it, a mixed column's string as ``to_json`` wrote it."""
    from exports.writers.jsonl_writer import json_value

    values, at = [], 0
    for i, string in enumerate(strings):
        if i:
            if row[at : at + 1] != b"\x02":
                raise RuntimeError("a JSON line from the database does not have one value per column")
            at += 1
        found = _FIELD.match(row, at)
        assert found is not None  # the pattern matches the empty value
        at = found.end()
        if (quoted := found.group(1)) is None:
            values.append(found.group(0))
            continue
        text = _COPY_ESCAPED.sub(rb"\1", quoted)
        values.append(json_value(text.decode()).encode() if string else text)
    if row[at:] != b"\n":
        raise RuntimeError("a JSON line from the database does not have one value per column")
    return b"\x02".join(values) + b"\n"


def json_frame(columns: Sequence[Column]) -> JsonFrame:
    """What a JSON line holds around its values: ``{"key":`` before the first, ``,"key":``
    before each other (the keys as the JSONL writer writes them)."""
    keys = [json.dumps(column.key) + ":" for column in columns]
    return ("{" + keys[0]).encode(), [("," + key).encode() for key in keys[1:]]


def json_lines(data: bytes, frame: JsonFrame) -> bytes:
    """Rows of JSON values (``\x02`` between values, ``\n`` after each row) as JSON lines:
    each row framed by ``{`` and ``}``, each value after its key.

    A JSON value cannot hold a raw control character, so a line feed ends a row and a row
    holds exactly one ``\x02`` per key after the first: the values and the keys interleave
    in one pass."""
    first, others = frame
    rows = data.count(b"\n")
    if not rows:
        return b""
    framed = first + data[:-1].replace(b"\n", b"}\n" + first) + b"}\n"
    if not others:
        return framed
    values = framed.split(b"\x02")
    if len(values) - 1 != rows * len(others):
        raise RuntimeError("a JSON line from the database does not have one value per column")
    mixed = [b""] * (2 * len(values) - 1)
    mixed[0::2] = values
    mixed[1::2] = others * rows
    return b"".join(mixed)


def _copy_lines(cursor: Any, statement: str, params: dict[str, Any], part: _Part) -> None:
    """Stream COPY's output, a row a line, as it is (typed CSV, sheet rows)."""

    def flush(rows: list[Any]) -> None:
        part.output.write(b"".join(rows))
        part.rows += len(rows)

    _blocks(cursor, statement, params, part, flush)


def _blocks(
    cursor: Any,
    statement: str,
    params: dict[str, Any],
    part: _Part,
    flush: Callable[[list[Any]], None],
    block_bytes: int = BLOCK_BYTES,
) -> None:
    """COPY sends a message per row: hand them on about ``block_bytes`` at a time, and stop
    between blocks when asked to."""
    with cursor.copy(statement, params) as copy:
        pending: list[Any] = []
        size = 0
        for block in copy:
            pending.append(block)
            size += len(block)
            if size >= block_bytes:
                flush(pending)
                pending, size = [], 0
                if part.stop.is_set():
                    raise ExportStopped
        flush(pending)
