"""Parquet through pyarrow: a typed schema from the column types, written in row groups.

The schema is fixed before the first row group, so a column's Arrow type comes from its
declared type, not from its values:

- text, choice, list → string;
- integer → int64; decimal → decimal128(18, 2); date → date32; boolean → bool;
- datetime → timestamp("us", tz) where tz is the zone of the first datetime value
  (the organization's zone; "UTC" when there is none). Arrow stores instants, so a value
  in another zone is still the right moment;
- number, and every tag column whatever its type → string holding ``as_text``: tag
  columns keep text that did not fit their type ("n/a" in a number column), and a
  string column loses none of it.

Core typed columns are typed correctly by the engine. Should a value still not fit its
column (a decimal with three places, an int beyond int64), it is coerced, or written as
null when it cannot be represented — a file cannot change a column's type halfway.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, BinaryIO, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from exports.columns_base import Column, ColumnGroup, ColumnType

from .base import BaseWriter
from .cells import text

DECIMAL_PRECISION, DECIMAL_SCALE = 18, 2
_DECIMAL_QUANTUM = Decimal(1).scaleb(-DECIMAL_SCALE)
_DECIMAL_MAX = Decimal(10) ** (DECIMAL_PRECISION - DECIMAL_SCALE)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def arrow_type(column: Column, zone: str) -> pa.DataType:
    """The Arrow type of a column's values (see the module docstring)."""
    if column.group == ColumnGroup.TAG:
        return pa.string()
    match column.type:
        case ColumnType.INTEGER:
            return pa.int64()
        case ColumnType.DECIMAL:
            return pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE)
        case ColumnType.DATE:
            return pa.date32()
        case ColumnType.DATETIME:
            return pa.timestamp("us", tz=zone)
        case ColumnType.BOOLEAN:
            return pa.bool_()
        case _:
            return pa.string()


def zone_name(tzinfo: dt.tzinfo | None) -> str:
    """The Arrow time zone name of a datetime's tzinfo: IANA key, or a fixed "+HH:MM" offset."""
    if tzinfo is None:
        return "UTC"
    key = getattr(tzinfo, "key", None) or getattr(tzinfo, "zone", None)  # zoneinfo, pytz
    if isinstance(key, str):
        return key
    offset = tzinfo.utcoffset(None)
    if offset is None or offset == dt.timedelta(0):
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float | Decimal):
        if not math.isfinite(value) or value != int(value):
            return None
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def _to_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None
    if not number.is_finite() or abs(number) >= _DECIMAL_MAX or number != number.quantize(_DECIMAL_QUANTUM):
        # Rounding money would change it silently; a null is visible.
        return None
    return number


def _to_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _to_datetime(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


def _to_text(value: Any) -> str | None:
    return None if value is None else text(value)


def _coercer(arrow: pa.DataType) -> Callable[[Any], Any]:
    if pa.types.is_string(arrow):
        return _to_text
    if pa.types.is_int64(arrow):
        return _to_int
    if pa.types.is_decimal(arrow):
        return _to_decimal
    if pa.types.is_date32(arrow):
        return _to_date
    if pa.types.is_timestamp(arrow):
        return _to_datetime
    return _to_bool


def column_array(values: Sequence[Any], arrow: pa.DataType) -> pa.Array:
    """An Arrow array of ``values``; values that do not fit are coerced (or nulled) first."""
    try:
        return pa.array(values, type=arrow)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        # The fast path converts in C; only a column with an odd value pays for Python.
        coerce = _coercer(arrow)
        return pa.array([None if value is None else coerce(value) for value in values], type=arrow)


class ParquetWriter(BaseWriter):
    """Apache Parquet with a typed schema, written in row groups without holding all rows."""

    format = "parquet"
    media_type = "application/vnd.apache.parquet"
    extension = "parquet"
    # Rows converted to Arrow at a time: Python row objects are ~10x bigger than their
    # Arrow form, so they are converted in small batches…
    batch_rows: ClassVar[int] = 2_500
    # …and written as row groups of this many rows (bigger groups read faster; 50,000 rows
    # of 93 columns took a SQLite export to 335 MB).
    row_group_rows: ClassVar[int] = 25_000
    compression: ClassVar[str] = "snappy"  # the default every Parquet reader supports

    def write_rows(
        self,
        *,
        columns: Sequence[Column],
        rows: Iterable[Sequence[Any]],
        stream: BinaryIO,
        about: Sequence[tuple[str, str]],
    ) -> None:
        """Write the file: schema from the first batch, then row groups of ``row_group_rows``."""
        schema, records = record_batches(columns, rows, self.batch_rows)
        parquet_write(stream, schema, records, about, row_group_rows=self.row_group_rows, compression=self.compression)


def record_batches(
    columns: Sequence[Column], rows: Iterable[Sequence[Any]], batch_rows: int
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The rows as record batches of ``batch_rows``, and their schema, whose datetimes are in
    the zone of the first datetime among the first batch's rows (the organization's)."""
    batches = _batches(iter(rows), batch_rows)
    first: list[Sequence[Any]] | None = next(batches, [])
    zone = _first_zone(columns, first or ())
    schema = pa.schema([pa.field(column.key, arrow_type(column, zone)) for column in columns])

    def records() -> Iterator[pa.RecordBatch]:
        batch = first
        while batch:
            record = _record_batch(batch, schema)
            # Release the Python rows before reading the next batch: only one batch lives.
            batch = None
            yield record
            batch = next(batches, None)

    return schema, records()


def parquet_write(
    stream: BinaryIO,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    about: Sequence[tuple[str, str]],
    *,
    row_group_rows: int,
    compression: str,
) -> None:
    """Write ``batches`` as row groups of at least ``row_group_rows`` rows, then ``about``
    (read once the batches are exhausted) as the file's key-value metadata."""
    with pq.ParquetWriter(stream, schema, compression=compression) as writer:
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for record in batches:
            pending.append(record)
            pending_rows += record.num_rows
            if pending_rows >= row_group_rows:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=pending_rows)
                pending, pending_rows = [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending), row_group_size=pending_rows)
        writer.add_key_value_metadata(about_metadata(about))


def about_metadata(about: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The About sheet of the other formats as the file's key-value metadata: one JSON
    object under ``dossier.about`` (who made the file, from what, how identities are shown)."""
    return {"dossier.about": json.dumps(dict(about), ensure_ascii=False)}


def _batches(rows: Iterator[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    """Lists of up to ``size`` rows."""
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _first_zone(columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> str:
    """The zone of the first datetime in a datetime column: the organization's zone."""
    indexes = [i for i, column in enumerate(columns) if column.type == ColumnType.DATETIME]
    for row in rows:
        for i in indexes:
            value = row[i]
            if isinstance(value, dt.datetime):
                return zone_name(value.tzinfo)
    return "UTC"


def _record_batch(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    """One record batch from rows, column by column."""
    values_by_column = list(zip(*rows, strict=True))
    arrays = [column_array(values, field.type) for values, field in zip(values_by_column, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
