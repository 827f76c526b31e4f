"""XLSX through openpyxl's write-only mode: typed cells, never a formula, any number of rows.

openpyxl writes the workbook (styles, sheet views, column widths, autofilter, the ZIP);
only the rows of our sheets are serialised here. openpyxl's own path builds a ``Cell``
per value, infers its type (``"=…"`` becomes a formula, ``"#N/A"`` an error) and writes
it through nested lxml contexts: ≈ 1,200 rows/s at 84 columns with plain values, ≈ 900
with an explicit string ``Cell`` per text value. Building each row as one lxml element
with an explicit type per cell gives ≈ 2,400 rows/s and makes "text is only ever an
inline string" a property of this code rather than of openpyxl's type guessing. It
relies on openpyxl internals (``WriteOnlyWorksheet._write_rows``, ``Workbook._add_sheet``,
the sheet's ``_writer``); openpyxl is pinned below 3.2 and the tests read every file back
with ``openpyxl.load_workbook``.

openpyxl streams each sheet's XML to a temporary file (in ``TMPDIR``) and deflates it into
the ZIP on ``save``: memory stays flat, but the disk needs room for the uncompressed XML
(≈ 3.5 GB per million 84-column rows) as well as the workbook.

ZIP64: openpyxl opens the archive with ``allowZip64=True`` and adds each sheet with
``ZipFile.write`` from its temporary file, whose size is known up front, so ``zipfile``
gives that entry ZIP64 headers by itself (``file_size * 1.05 > ZIP64_LIMIT``, 2 GiB), and
writes ZIP64 directory records once offsets pass the same limit. Nothing needs forcing
(``force_zip64`` only matters for entries streamed with an unknown size); a test checks
it with ``zipfile``'s limit lowered.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Generator, Iterable, Sequence
from contextlib import suppress
from decimal import Decimal
from typing import Any, BinaryIO, ClassVar

from lxml.etree import Element, SubElement, _Element
from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from exports.columns_base import Column
from tagging.formatting import NO, YES

from .base import BaseWriter
from .cells import text, xlsx_text

DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
HEADER_FONT = Font(bold=True)
HEADER_FILL = PatternFill(fill_type="solid", start_color="FFD9E1F2", end_color="FFD9E1F2")
DATA_TITLE = "Data"
ABOUT_TITLE = "About"
# Excel stores numbers as doubles and shows 15 significant digits: larger integers
# (external ids) and longer decimals are written as text so no digit is lost.
MAX_EXACT_INT = 10**15
MAX_EXACT_DIGITS = 15
# Excel's serial 1 is 1900-01-01 and it counts a 29 February 1900 that never was, so
# serials are only plain day counts from 1899-12-30 on and after 1900-03-01; earlier
# dates (none in case data) are written as ISO text rather than a wrong date.
EXCEL_EPOCH = dt.date(1899, 12, 30)
EXCEL_EPOCH_DATETIME = dt.datetime(1899, 12, 30)
MIN_EXCEL_DATE = dt.date(1900, 3, 1)
SECONDS_PER_DAY = 86_400
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"


class XlsxWriter(BaseWriter):
    """Excel workbook: styled, frozen, filterable header; data split over sheets; an About sheet."""

    format = "xlsx"
    media_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    extension = "xlsx"
    # Excel's 1,048,576 rows per sheet, less the header row. Tests lower it.
    max_rows_per_sheet: ClassVar[int] = 1_048_575

    def write_rows(
        self,
        *,
        columns: Sequence[Column],
        rows: Iterable[Sequence[Any]],
        stream: BinaryIO,
        about: Sequence[tuple[str, str]],
    ) -> None:
        """Write the data sheets, then the About sheet, and save the workbook to ``stream``."""
        workbook = Workbook(write_only=True)
        try:
            self._write_sheets(workbook, columns=columns, rows=rows, about=about)
            workbook.save(stream)
        except BaseException:
            _discard(workbook)
            raise

    def _write_sheets(
        self,
        workbook: Workbook,
        *,
        columns: Sequence[Column],
        rows: Iterable[Sequence[Any]],
        about: Sequence[tuple[str, str]],
    ) -> None:
        encoder = RowEncoder(workbook)
        limit = self.max_rows_per_sheet
        sheet = _data_sheet(workbook, DATA_TITLE, columns, encoder)
        sheets, in_sheet = 1, 0
        for row in rows:
            if in_sheet == limit:
                _finish_data_sheet(sheet, len(columns), in_sheet)
                sheets += 1
                sheet = _data_sheet(workbook, f"{DATA_TITLE} ({sheets})", columns, encoder)
                in_sheet = 0
            sheet.append((row, None))
            in_sheet += 1
        _finish_data_sheet(sheet, len(columns), in_sheet)
        _about_sheet(workbook, about, encoder)


class RowEncoder:
    """Serialises one row as a ``<row>`` element, typing every cell from its value.

    Text (and Yes/No) is always an inline string, cleaned, neutralised and cut to fit;
    int/float/Decimal are numbers; dates and datetimes are date serials with a date
    format. Nothing ever becomes a formula or an error cell.
    """

    def __init__(self, workbook: Workbook) -> None:
        # A sheet that is never added to the workbook: it only lends style ids.
        owner = WriteOnlyWorksheet(workbook, "styles")
        self.date_style = _style_id(owner, number_format=DATE_FORMAT)
        self.datetime_style = _style_id(owner, number_format=DATETIME_FORMAT)
        self.header_style = _style_id(owner, font=HEADER_FONT, fill=HEADER_FILL)
        self.bold_style = _style_id(owner, font=HEADER_FONT)
        self._letters: list[str] = []
        self._by_type: dict[type, Callable[[_Element, str, Any], None]] = {
            str: self._str,
            bool: self._bool,
            int: self._int,
            float: self._float,
            Decimal: self._decimal,
            dt.date: self._date,
            dt.datetime: self._datetime,
        }

    def encode(self, values: Sequence[Any], row_index: int, styles: Sequence[str | None] | None = None) -> _Element:
        """The ``<row>`` element for ``values``; ``styles`` (style ids) are for header and About rows."""
        number = str(row_index)
        row = Element("row", r=number)
        letters = self._letters
        if len(letters) < len(values):
            letters.extend(get_column_letter(i) for i in range(len(letters) + 1, len(values) + 1))
        if styles is not None:
            for letter, value, style in zip(letters, values, styles, strict=False):
                if value is not None:
                    self._text(row, letter + number, text(value), style)
            return row
        by_type = self._by_type
        for letter, value in zip(letters, values, strict=False):
            if value is None:
                continue
            encode = by_type.get(value.__class__)
            if encode is not None:
                encode(row, letter + number, value)
            else:
                self._other(row, letter + number, value)
        return row

    def _text(self, row: _Element, ref: str, value: str, style: str | None = None) -> None:
        value = xlsx_text(value)
        if not value:
            return
        cell = SubElement(row, "c", r=ref, t="inlineStr")
        if style is not None:
            cell.set("s", style)
        node = SubElement(SubElement(cell, "is"), "t")
        node.text = value
        if value[0].isspace() or value[-1].isspace():
            node.set(XML_SPACE, "preserve")

    def _str(self, row: _Element, ref: str, value: str) -> None:
        self._text(row, ref, value)

    def _bool(self, row: _Element, ref: str, value: bool) -> None:
        self._text(row, ref, YES if value else NO)

    def _number(self, row: _Element, ref: str, value: str) -> None:
        SubElement(SubElement(row, "c", r=ref, t="n"), "v").text = value

    def _number_as_text(self, row: _Element, ref: str, value: Any) -> None:
        # A number Excel cannot hold exactly: text, but not user text, so no formula quote
        # ("-1234567890123456789" keeps its minus sign as the first character).
        SubElement(SubElement(SubElement(row, "c", r=ref, t="inlineStr"), "is"), "t").text = text(value)

    def _int(self, row: _Element, ref: str, value: int) -> None:
        if -MAX_EXACT_INT < value < MAX_EXACT_INT:
            self._number(row, ref, int.__repr__(value))
        else:
            self._number_as_text(row, ref, value)

    def _float(self, row: _Element, ref: str, value: float) -> None:
        if math.isfinite(value):
            self._number(row, ref, float.__repr__(value))
        else:
            self._number_as_text(row, ref, value)

    def _decimal(self, row: _Element, ref: str, value: Decimal) -> None:
        if value.is_finite() and len(value.as_tuple().digits) <= MAX_EXACT_DIGITS:
            self._number(row, ref, format(value, "f"))
        else:
            self._number_as_text(row, ref, value)

    def _date(self, row: _Element, ref: str, value: dt.date) -> None:
        if value < MIN_EXCEL_DATE:
            self._text(row, ref, value.isoformat())
            return
        cell = SubElement(row, "c", r=ref, t="n", s=self.date_style)
        SubElement(cell, "v").text = str((value - EXCEL_EPOCH).days)

    def _datetime(self, row: _Element, ref: str, value: dt.datetime) -> None:
        if value.date() < MIN_EXCEL_DATE:
            self._text(row, ref, value.isoformat())
            return
        # Excel has no time zones: write the wall-clock time the value already has (the
        # organization's zone), which is what the other formats show.
        delta = value.replace(tzinfo=None) - EXCEL_EPOCH_DATETIME
        serial = delta.days + (delta.seconds + delta.microseconds / 1_000_000) / SECONDS_PER_DAY
        cell = SubElement(row, "c", r=ref, t="n", s=self.datetime_style)
        SubElement(cell, "v").text = float.__repr__(serial)

    def _other(self, row: _Element, ref: str, value: Any) -> None:
        # Subclasses (a str subclass, a pandas Timestamp…) and anything unexpected.
        if isinstance(value, bool):
            self._bool(row, ref, value)
        elif isinstance(value, dt.datetime):
            self._datetime(row, ref, value)
        elif isinstance(value, dt.date):
            self._date(row, ref, value)
        elif isinstance(value, int):
            self._int(row, ref, int(value))
        elif isinstance(value, float):
            self._float(row, ref, float(value))
        elif isinstance(value, Decimal):
            self._decimal(row, ref, value)
        else:
            self._text(row, ref, text(value))


class _Sheet(WriteOnlyWorksheet):
    """A write-only sheet whose rows are ``(values, styles)`` pairs serialised by a ``RowEncoder``."""

    def __init__(self, parent: Workbook, title: str, encoder: RowEncoder) -> None:
        super().__init__(parent, title)
        self._encoder = encoder

    def _write_rows(self) -> Generator[None, tuple[Sequence[Any], Sequence[str | None] | None], None]:
        # Same protocol as WriteOnlyWorksheet._write_rows (``append`` sends each row in;
        # ``close`` ends it), with rows built by the encoder instead of Cell objects.
        xf = self._writer.xf.send(True)
        encode = self._encoder.encode
        with xf.element("sheetData"):
            row_index = 1
            try:
                while True:
                    values, styles = yield
                    xf.write(encode(values, row_index, styles))
                    row_index += 1
            except GeneratorExit:
                pass
        self._writer.xf.send(None)


def _style_id(owner: WriteOnlyWorksheet, **style: Any) -> str:
    """The workbook's style id (``s`` attribute) for a number format / font / fill."""
    cell = Cell(owner)
    for name, value in style.items():
        setattr(cell, name, value)
    return str(cell.style_id)


def _add_sheet(workbook: Workbook, title: str, encoder: RowEncoder) -> _Sheet:
    sheet = _Sheet(workbook, title, encoder)
    workbook._add_sheet(sheet)
    return sheet


def _data_sheet(workbook: Workbook, title: str, columns: Sequence[Column], encoder: RowEncoder) -> _Sheet:
    """A new data sheet with column widths, the header row frozen, and the header itself."""
    sheet = _add_sheet(workbook, title, encoder)
    # Widths and panes go in the sheet's head, so they are set before the first row.
    for index, column in enumerate(columns, 1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.freeze_panes = "A2"
    sheet.append(([column.label for column in columns], [encoder.header_style] * len(columns)))
    return sheet


def _finish_data_sheet(sheet: _Sheet, width: int, data_rows: int) -> None:
    """Filter over the header and the rows below it (written in the sheet's tail, so set last)."""
    if width:
        sheet.auto_filter.ref = f"A1:{get_column_letter(width)}{data_rows + 1}"


def _about_sheet(workbook: Workbook, about: Sequence[tuple[str, str]], encoder: RowEncoder) -> None:
    """The last sheet: what this file is, as label/value pairs given by the engine."""
    sheet = _add_sheet(workbook, ABOUT_TITLE, encoder)
    sheet.column_dimensions["A"].width = 28
    sheet.column_dimensions["B"].width = 80
    header = encoder.header_style
    sheet.append((["Field", "Value"], [header, header]))
    for label, value in about:
        sheet.append(([label, value], [encoder.bold_style, None]))


def _discard(workbook: Workbook) -> None:
    """Remove the sheets' temporary XML files after a failure or a cancel.

    openpyxl deletes them only when the workbook is saved (or at interpreter exit); a
    long-lived worker would otherwise keep gigabytes in ``TMPDIR`` per cancelled export.
    """
    for sheet in workbook.worksheets:
        writer = getattr(sheet, "_writer", None)
        if writer is None:
            continue
        with suppress(Exception):
            if not sheet.closed:
                sheet.close()
        with suppress(OSError, ValueError):
            writer.cleanup()
