"""CSV: UTF-8 with a BOM (so Excel detects the encoding), RFC 4180, formulas neutralised.

The bytes are those of Python's ``csv`` module (excel dialect, minimal quoting, CRLF), but
the rows are written a batch at a time, column by column: a column whose values are all of
one kind is rendered with one C-level call per cell or none (``map``, ``str.join``), and its
cells are searched for a character that needs quoting all at once. The ``csv`` module looks
up every character of every cell in the line terminator with a function call: it was about a
fifth of a SQLite export's instructions.
"""

from __future__ import annotations

import datetime as dt
import itertools
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, BinaryIO

from exports.columns_base import Column
from tagging.formatting import NO, YES, as_text

from .base import ColumnBlock, ColumnWriter
from .cells import FORMULA_PREFIXES, NEUTRALISER, spreadsheet_text

BOM = b"\xef\xbb\xbf"
# What the csv module quotes (minimal quoting): the delimiter, the quote, the line terminator's characters.
NEEDS_QUOTES = re.compile('[,"\r\n]')
# A column's text is searched for each of them (``in``: a memchr, ten times a regex's pace).
_QUOTED_CHARACTERS = (",", '"', "\r", "\n")
# Each formula prefix is one character: a cell's first (``text[0:1]``, "" when empty) is looked up.
_FORMULA_FIRSTS = frozenset(FORMULA_PREFIXES)
assert all(len(prefix) == 1 for prefix in FORMULA_PREFIXES)
_FIRST = slice(0, 1)
_NONE = type(None)

# Values whose as_text can never start with a formula character nor hold a character to
# quote, with their as_text: ints and Decimals are real numbers (a minus sign stays), ISO
# dates start with a digit, booleans read Yes/No. float is left out because as_text cannot
# render NaN or infinities.
_NEVER_NEUTRALISED: dict[type, Callable[[Any], str]] = {
    int: int.__repr__,
    bool: lambda value: YES if value else NO,
    Decimal: as_text,
    dt.date: dt.date.isoformat,
    dt.datetime: dt.datetime.isoformat,
}


class CsvWriter(ColumnWriter):
    """Comma-separated values, header row of labels, every cell rendered with ``as_text``."""

    format = "csv"
    media_type = "text/csv; charset=utf-8"
    extension = "csv"
    datetimes_as_text = True

    def write_columns(
        self,
        *,
        columns: Sequence[Column],
        blocks: Iterable[ColumnBlock],
        stream: BinaryIO,
        about: Sequence[tuple[str, str]],
    ) -> None:
        """Write the header and the rows as CSV."""
        single = len(columns) == 1
        header = [_quoted([spreadsheet_text(column.label)]) for column in columns]
        stream.write(BOM + _lines(header, single))
        for block in blocks:
            stream.write(_lines([_cells(values) for values in block], single))


def _lines(columns: Sequence[Sequence[str]], single: bool) -> bytes:
    """CRLF-ended records of the cells, given column by column, as UTF-8 ("replace": a lone
    surrogate in stored text must not abort a million-row export)."""
    if single:  # the csv module quotes a record's only field when it is empty
        columns = [['""' if cell == "" else cell for cell in columns[0]]]
    return ("\r\n".join(map(",".join, zip(*columns, strict=True))) + "\r\n").encode("utf-8", errors="replace")


def _cells(values: Sequence[Any]) -> Sequence[str]:
    """One column's CSV cells: numbers as they are, any other text neutralised, quoted
    where it holds a comma, a quote or a line break."""
    kinds = set(map(type, values))
    blanks = _NONE in kinds
    kinds.discard(_NONE)
    if len(kinds) == 1:
        kind = kinds.pop()
        if kind is str:
            texts = ["" if v is None else v for v in values] if blanks else values
            if not _FORMULA_FIRSTS.isdisjoint(map(operator.getitem, texts, itertools.repeat(_FIRST))):
                texts = [NEUTRALISER + v if v.startswith(FORMULA_PREFIXES) else v for v in texts]
            return _quoted(texts)
        if (render := _NEVER_NEUTRALISED.get(kind)) is not None:
            return ["" if v is None else render(v) for v in values] if blanks else list(map(render, values))
    elif not kinds:
        return [""] * len(values)
    cell = spreadsheet_text
    return _quoted(
        [(NEUTRALISER + v if v.startswith(FORMULA_PREFIXES) else v) if v.__class__ is str else cell(v) for v in values]
    )


def _quoted(texts: Sequence[str]) -> Sequence[str]:
    """The cells that need it quoted as the csv module quotes (quotes doubled); one search
    through the whole column first, which most columns pass."""
    joined = "".join(texts)
    if not any(character in joined for character in _QUOTED_CHARACTERS):
        return texts
    return ['"' + v.replace('"', '""') + '"' if NEEDS_QUOTES.search(v) else v for v in texts]
