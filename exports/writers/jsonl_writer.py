"""JSON Lines: one object per row keyed by column key, native JSON types, exact decimals."""

from __future__ import annotations

import datetime as dt
import io
import json.encoder
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, BinaryIO

from exports.columns_base import Column

from .base import BaseWriter
from .cells import text

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


class JsonlWriter(BaseWriter):
    """One JSON object per line, UTF-8, keys are the column keys; no formula neutralisation."""

    format = "jsonl"
    media_type = "application/jsonl"
    extension = "jsonl"

    def write_rows(
        self,
        *,
        columns: Sequence[Column],
        rows: Iterable[Sequence[Any]],
        stream: BinaryIO,
        about: Sequence[tuple[str, str]],
    ) -> None:
        """Write one line per row."""
        # "backslashreplace" turns a lone surrogate into a \udcxx escape, which is valid
        # JSON inside a string (the only place text goes) and reads back as the same value.
        out = io.TextIOWrapper(
            stream,
            encoding="utf-8",
            errors="backslashreplace",
            newline="\n",
            write_through=False,
        )
        try:
            keys = [_quote(column.key) + ":" for column in columns]
            by_type, fallback, write = _BY_TYPE, json_value, out.write
            for row in rows:
                values = [
                    key + (by_type[value.__class__](value) if value.__class__ in by_type else fallback(value))
                    for key, value in zip(keys, row, strict=True)
                ]
                write("{" + ",".join(values) + "}\n")
            out.flush()
        finally:
            # Detaching (not closing) keeps the caller's stream open.
            out.detach()
