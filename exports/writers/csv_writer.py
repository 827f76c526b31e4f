"""CSV: UTF-8 with a BOM (so Excel detects the encoding), RFC 4180, formulas neutralised."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, BinaryIO

from exports.columns_base import Column
from tagging.formatting import NO, YES, as_text

from .base import BaseWriter
from .cells import FORMULA_PREFIXES, NEUTRALISER, spreadsheet_text

# Values whose as_text can never start with a formula character, with their as_text: ints
# and Decimals are real numbers (a minus sign stays), ISO dates start with a digit, booleans
# read Yes/No. float is left out because as_text cannot render NaN or infinities.
_NEVER_NEUTRALISED: dict[type, Callable[[Any], str]] = {
    int: int.__repr__,
    bool: lambda value: YES if value else NO,
    Decimal: as_text,
    dt.date: dt.date.isoformat,
    dt.datetime: dt.datetime.isoformat,
}


class CsvWriter(BaseWriter):
    """Comma-separated values, header row of labels, every cell rendered with ``as_text``."""

    format = "csv"
    media_type = "text/csv; charset=utf-8"
    extension = "csv"

    def write_rows(
        self,
        *,
        columns: Sequence[Column],
        rows: Iterable[Sequence[Any]],
        stream: BinaryIO,
        about: Sequence[tuple[str, str]],
    ) -> None:
        """Write the header and the rows as CSV."""
        # "utf-8-sig" writes the BOM once; newline="" leaves line endings to the csv module.
        # "replace" because a lone surrogate in stored text must not abort a million-row export.
        text = io.TextIOWrapper(
            stream,
            encoding="utf-8-sig",
            errors="replace",
            newline="",
            write_through=False,
        )
        try:
            out = csv.writer(text, dialect="excel", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
            out.writerow([spreadsheet_text(column.label) for column in columns])
            prefixes, quote, cell = FORMULA_PREFIXES, NEUTRALISER, spreadsheet_text
            render = _NEVER_NEUTRALISED.get
            writerow = out.writerow
            for row in rows:
                # The common cases inline (this loop runs once per cell); spreadsheet_text for the rest.
                writerow(
                    [
                        (quote + v if v.startswith(prefixes) else v)
                        if v.__class__ is str
                        else ""
                        if v is None
                        else render(v.__class__, cell)(v)
                        for v in row
                    ]
                )
            text.flush()
        finally:
            # Detaching (not closing) keeps the caller's stream open; a wrapper that is
            # garbage-collected would otherwise close it.
            text.detach()
