"""JSON Lines: one object per row keyed by column key, native JSON types, exact decimals."""

from __future__ import annotations

import datetime as dt
import json.encoder
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, BinaryIO

from exports.columns_base import Column

from .base import ColumnBlock, ColumnWriter
from .cells import text

_NONE = type(None)
_ISOFORMAT: dict[type, Callable[[Any], str]] = {dt.datetime: dt.datetime.isoformat, dt.date: dt.date.isoformat}
# The C string encoder behind json.dumps(ensure_ascii=False): quotes and escapes, keeps non-ASCII.
_quote: Callable[[str], str] = json.encoder.encode_basestring


def _float(value: float) -> str:
    # JSON has no NaN or Infinity (json.dumps would emit invalid JSON): keep them as strings.
    return float.__repr__(value) if value - value == 0 else _quote(text(value))


def _decimal(value: Decimal) -> str:
    # Written as a bare JSON number from its exact digits: going through float would turn
    # 0.10 + 0.20 money into 0.30000000000000004.
    return format(value, "f") if value.is_finite() else _quote(text(value))


_BY_TYPE: dict[type, Callable[[Any], str]] = {
    str: _quote,
    bool: lambda value: "true" if value else "false",
    int: int.__repr__,
    float: _float,
    Decimal: _decimal,
    dt.date: lambda value: '"' + value.isoformat() + '"',
    dt.datetime: lambda value: '"' + value.isoformat() + '"',
    type(None): lambda value: "null",
}


def json_value(value: Any) -> str:
    """The JSON text of one value."""
    encode = _BY_TYPE.get(value.__class__)
    if encode is not None:
        return encode(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, dt.date):  # datetime is a date
        return '"' + value.isoformat() + '"'
    return _quote(text(value))


class JsonlWriter(ColumnWriter):
    """One JSON object per line, UTF-8, keys are the column keys; no formula neutralisation.

    Rows are written a batch at a time, column by column (as the CSV writer does): a column
    whose values are all of one kind is encoded with one C-level call per value, and each
    line is laid out by one ``%`` of a template holding the keys."""

    format = "jsonl"
    media_type = "application/jsonl"
    extension = "jsonl"
    datetimes_as_text = True

    def write_columns(
        self,
        *,
        columns: Sequence[Column],
        blocks: Iterable[ColumnBlock],
        stream: BinaryIO,
        about: Sequence[tuple[str, str]],
    ) -> None:
        """Write one line per row."""
        line = "{" + ",".join(_quote(column.key).replace("%", "%%") + ":%s" for column in columns) + "}\n"
        size = self.block_rows  # a JSON line is long: a block's lines are made this many at a time
        for block in blocks:
            for start in range(0, len(block[0]), size):
                values = [_values(column[start : start + size]) for column in block]
                # "backslashreplace" turns a lone surrogate into a \udcxx escape, which is valid
                # JSON inside a string (the only place text goes) and reads back as the same value.
                lines = "".join(map(line.__mod__, zip(*values, strict=True)))
                stream.write(lines.encode("utf-8", "backslashreplace"))


def _values(values: Sequence[Any]) -> list[str]:
    """One column's JSON values."""
    kinds = set(map(type, values))
    if len(kinds) == 1:
        kind = kinds.pop()
        if kind is dt.datetime or kind is dt.date:  # ISO text needs no escaping: quoted as it is
            return list(map(_quote, map(_ISOFORMAT[kind], values)))
        if (encode := _BY_TYPE.get(kind)) is not None:
            return list(map(encode, values))
    elif kinds == {str, _NONE}:
        return ["null" if v is None else _quote(v) for v in values]
    by_type, fallback = _BY_TYPE, json_value
    return [by_type[v.__class__](v) if v.__class__ in by_type else fallback(v) for v in values]
