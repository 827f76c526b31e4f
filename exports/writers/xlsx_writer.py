"""XLSX written directly as SpreadsheetML: typed cells, never a formula, any number of rows.

Every cell is a string built from a template chosen by the value's type, written to the
sheet's XML as it comes: no cell object, no XML tree. (openpyxl's write-only mode, the
previous path, built an element per row and reached ≈ 2.4k rows/s at 84 columns; the
templates write several times faster.) openpyxl remains the reader of these files in the
tests, and LibreOffice converts them in a slow test.

Cells: text (and Yes/No) is always an inline string — cleaned of characters XML cannot
hold, neutralised against formulas, cut to Excel's 32,767-character limit; int, float and
Decimal are numbers unless Excel cannot hold them exactly (then text); dates and
datetimes are date serials of the wall-clock time with a date format.

A sheet starts with its true ``<dimension>`` (readers size the sheet from it), known only
once its last row is written. So each sheet's rows are deflated as they come, into a
temporary file, and the sheet's head is deflated on its own when the sheet ends: two raw
deflate streams, the first ended by a sync flush, make one (as ``pigz`` joins its blocks),
and the CRC-32 of the whole is combined from the two parts' (zlib's ``crc32_combine``).
The entry is then laid into the ZIP with its sizes known, so entries past 4 GiB get ZIP64
headers (≈ 3.5 GB of XML per million 96-column rows). Deflating as rows come lets the pushdown's database
connections write the next parts meanwhile; memory stays flat, and the disk holds one
sheet's compressed XML (about a ninth of it), never the XML itself.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import IO, Any, BinaryIO, ClassVar
from xml.sax.saxutils import escape, quoteattr

from openpyxl.utils import get_column_letter
from zlib_ng import zlib_ng as zlib  # zlib's API; deflates sheet XML ≈ 1.6× faster at level 2

from exports.columns_base import Column
from exports.tempfiles import temporary_dir
from tagging.formatting import NO, YES

from .base import BaseWriter
from .cells import XLSX_CR, text, xlsx_string_cell

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
EXCEL_EPOCH_ORDINAL = EXCEL_EPOCH.toordinal()
MIN_EXCEL_DATE = dt.date(1900, 3, 1)
SECONDS_PER_DAY = 86_400
# Deflate level of the sheets (zlib-ng's): 2 deflates sheet XML at ≈ 420 MB/s here to about
# a sixth (stdlib zlib's level 1: ≈ 255 MB/s, a little larger; zlib-ng's 1: a fifth).
COMPRESS_LEVEL = 2

# Text that can go into a cell as it is: no markup or CR to escape, no character XML
# cannot hold, no formula or whitespace at its start, short enough never to be cut.
NEEDS_CARE = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
FORMULA_FIRST = frozenset("=+-@")  # tab, CR and LF are whitespace, caught beside it
PLAIN_MAX = 16_383  # half of Excel's limit: within it even UTF-16 surrogate pairs fit
# Style ids (``s``) of styles.xml below.
DATE_STYLE, DATETIME_STYLE, HEADER_STYLE, BOLD_STYLE = "1", "2", "3", "4"

NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
NS_R = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
STYLES = (
    XML_HEAD + f"<styleSheet {NS}>"
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="3"><fill><patternFill/></fill><fill><patternFill patternType="gray125"/></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="FFD9E1F2"/><bgColor rgb="FFD9E1F2"/></patternFill></fill>'
    "</fills>"
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="2" borderId="0" xfId="0" applyFont="1" applyFill="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


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
        """Write the data sheets, then the About sheet, then the workbook's other parts."""
        workbook_write(stream=stream, columns=columns, rows=rows, about=about, limit=self.max_rows_per_sheet)


def workbook_write(
    *,
    stream: BinaryIO,
    columns: Sequence[Column],
    about: Sequence[tuple[str, str]],
    limit: int,
    rows: Iterable[Any] = (),
    xml: Iterable[bytes] = (),
) -> None:
    """The workbook: ``rows`` as data sheets of at most ``limit`` rows, then the About sheet
    and the package. Rows are values; or, with ``xml``, blocks of ``<row>`` elements the
    SQL pushdown or a forked part wrote, one per line, laid into the sheets as they are."""
    encoder = RowEncoder(len(columns))
    style, encode = encoder.styled, encoder.encode
    widths = [column.width for column in columns]
    header = [column.label for column in columns]
    count = 0
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED, allowZip64=True, compresslevel=COMPRESS_LEVEL) as zf:
        sheet = _SheetFile(widths, frozen=True)
        try:
            sheet.row(style(header, 1, HEADER_STYLE))
            in_sheet = 0

            def next_sheet() -> None:
                nonlocal count, sheet, in_sheet
                count += 1
                _add_sheet(zf, sheet, count, filtered=True)
                sheet = _SheetFile(widths, frozen=True)
                sheet.row(style(header, 1, HEADER_STYLE))
                in_sheet = 0

            for block in xml:
                while block:
                    if in_sheet == limit:
                        next_sheet()
                    lines, cut = _lines_within(block, limit - in_sheet)
                    sheet.rows_xml(block[:cut].replace(b"\n", b""), lines)
                    in_sheet += lines
                    block = block[cut:]
            for values in rows:
                if in_sheet == limit:
                    next_sheet()
                in_sheet += 1
                sheet.row(encode(values))
            count += 1
            _add_sheet(zf, sheet, count, filtered=True)
            sheet = _SheetFile([28, 80], frozen=False)
            sheet.row(style(["Field", "Value"], 1, HEADER_STYLE))
            for number, (label, value) in enumerate(about, 2):
                sheet.row(style([label, value], number, (BOLD_STYLE, None)))
            _add_sheet(zf, sheet, count + 1, filtered=False)
        finally:
            sheet.close()
        names = [DATA_TITLE if i == 0 else f"{DATA_TITLE} ({i + 1})" for i in range(count)]
        _write_package(zf, [*names, ABOUT_TITLE])


class RowEncoder:
    """Serialises one row as a ``<row>`` string, typing every cell from its value.

    Text (and Yes/No) is always an inline string, cleaned, neutralised and cut to fit;
    int/float/Decimal are numbers; dates and datetimes are date serials with a date
    format. Nothing ever becomes a formula or an error cell.
    """

    def __init__(self, width: int) -> None:
        self.letters = [get_column_letter(i) for i in range(1, max(width, 2) + 1)]
        self._by_type: dict[type, Callable[[Any], str]] = {
            str: self._str,
            bool: self._bool,
            int: self._int,
            float: self._float,
            Decimal: self._decimal,
            dt.date: self._date,
            dt.datetime: self._datetime,
        }

    def encode(self, values: Any) -> str:
        """The ``<row>`` of a data row. Neither the row nor its cells carry a reference:
        each follows the one before it (an empty cell is ``<c/>``), so rows written apart
        (the pushdown's, a forked part's) are laid into a sheet as they are."""
        by_type, other = self._by_type, self._other
        cells = [EMPTY if value is None else (by_type.get(value.__class__) or other)(value) for value in values]
        return f"<row>{''.join(cells)}</row>"

    def styled(self, values: Any, row_index: int, styles: str | Sequence[str | None]) -> str:
        """The ``<row>`` of a header or About row: text cells, ``styles`` a style id or one per cell."""
        number = str(row_index)
        letters = self.letters
        if len(letters) < len(values):
            letters.extend(get_column_letter(i) for i in range(len(letters) + 1, len(values) + 1))
        per_cell = [styles] * len(values) if isinstance(styles, str) else styles
        cells = [
            _text(letter + number, text(value), style)
            for letter, value, style in zip(letters, values, per_cell, strict=False)
            if value is not None
        ]
        return f'<row r="{number}">{"".join(cells)}</row>'

    @staticmethod
    def _str(value: str) -> str:
        # Most text needs none of the care _text takes: one regex tells (the hot path).
        if (
            value
            and len(value) <= PLAIN_MAX
            and value[0] not in FORMULA_FIRST
            and not value[0].isspace()
            and not value[-1].isspace()
            and NEEDS_CARE.search(value) is None
        ):
            return f'<c t="inlineStr"><is><t>{value}</t></is></c>'
        return _cell(value)

    @staticmethod
    def _bool(value: bool) -> str:
        return YES_CELL if value else NO_CELL

    @staticmethod
    def _int(value: int) -> str:
        if -MAX_EXACT_INT < value < MAX_EXACT_INT:
            return f"<c><v>{int.__repr__(value)}</v></c>"
        return _number_as_text(value)

    @staticmethod
    def _float(value: float) -> str:
        if math.isfinite(value):
            return f"<c><v>{float.__repr__(value)}</v></c>"
        return _number_as_text(value)

    @staticmethod
    def _decimal(value: Decimal) -> str:
        if value.is_finite() and len(value.as_tuple().digits) <= MAX_EXACT_DIGITS:
            return f"<c><v>{format(value, 'f')}</v></c>"
        return _number_as_text(value)

    @staticmethod
    def _date(value: dt.date) -> str:
        if value < MIN_EXCEL_DATE:
            return _cell(value.isoformat())
        return f'<c s="{DATE_STYLE}"><v>{(value - EXCEL_EPOCH).days}</v></c>'

    @staticmethod
    def _datetime(value: dt.datetime) -> str:
        if value.date() < MIN_EXCEL_DATE:
            return _cell(value.isoformat())
        # Excel has no time zones: write the wall-clock time the value already has (the
        # organization's zone), which is what the other formats show.
        # The same steps as the wall-clock time minus 1899-12-30 as a timedelta (days, then
        # seconds and microseconds), without building two datetimes per cell.
        seconds = value.hour * 3600 + value.minute * 60 + value.second
        serial = value.toordinal() - EXCEL_EPOCH_ORDINAL + (seconds + value.microsecond / 1_000_000) / SECONDS_PER_DAY
        return f'<c s="{DATETIME_STYLE}"><v>{float.__repr__(serial)}</v></c>'

    def _other(self, value: Any) -> str:
        # Subclasses (a str subclass, a pandas Timestamp…) and anything unexpected.
        if isinstance(value, bool):
            return self._bool(value)
        if isinstance(value, dt.datetime):
            return self._datetime(value)
        if isinstance(value, dt.date):
            return self._date(value)
        if isinstance(value, int):
            return self._int(int(value))
        if isinstance(value, float):
            return self._float(float(value))
        if isinstance(value, Decimal):
            return self._decimal(value)
        return _cell(text(value))


EMPTY = "<c/>"


def _text(ref: str, value: str, style: str | None = None) -> str:
    """An inline-string cell at ``ref`` ("" when nothing is left of the text once made safe):
    the header's and the About sheet's cells."""
    return xlsx_string_cell(value, f' r="{ref}"' + (f' s="{style}"' if style else ""))


def _cell(value: str) -> str:
    """A data row's inline-string cell, <c/> when nothing is left of the text once made safe."""
    return xlsx_string_cell(value) or EMPTY


YES_CELL, NO_CELL = _cell(YES), _cell(NO)


def _number_as_text(value: Any) -> str:
    # A number Excel cannot hold exactly: text, but not user text, so no formula quote
    # ("-1234567890123456789" keeps its minus sign as the first character).
    return f'<c t="inlineStr"><is><t>{escape(text(value), XLSX_CR)}</t></is></c>'


class _SheetFile:
    """One sheet's XML: its rows deflated as they come into a temporary file; its head (with
    the dimension) and tail added when it ends."""

    def __init__(self, widths: Sequence[int], *, frozen: bool) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="dossier-sheet-", dir=temporary_dir())  # noqa: SIM115
        self.width = len(widths)
        self.rows = 0
        cols = "".join(
            f'<col min="{i}" max="{i}" width="{width}" customWidth="1"/>' for i, width in enumerate(widths, 1)
        )
        pane = (
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
            if frozen
            else '<selection activeCell="A1" sqref="A1"/>'
        )
        self._head = (
            f"{XML_HEAD}<worksheet {NS} {NS_R}>",
            f'<sheetViews><sheetView workbookViewId="0">{pane}</sheetView></sheetViews>'
            f'<sheetFormatPr defaultRowHeight="15"/><cols>{cols}</cols><sheetData>',
        )
        self._deflate = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc = 0
        self._size = 0
        self._lines: list[str] = []

    def rows_xml(self, xml: bytes, count: int) -> None:
        """``count`` rows already serialised."""
        self._flush()
        self._write(xml)
        self.rows += count

    def row(self, xml: str) -> None:
        self._lines.append(xml)
        self.rows += 1
        if len(self._lines) >= 1000:
            self._flush()

    def _flush(self) -> None:
        if self._lines:
            self._write("".join(self._lines).encode())
            self._lines = []

    def _write(self, xml: bytes) -> None:
        self._crc = zlib.crc32(xml, self._crc)
        self._size += len(xml)
        self.file.write(self._deflate.compress(xml))

    def add_to(self, zf: zipfile.ZipFile, name: str, *, filtered: bool) -> None:
        """Close the XML (with the autofilter over the header and rows), put the dimension
        in its head, and add the sheet to the ZIP as ``name``."""
        self._flush()
        last = f"{get_column_letter(max(self.width, 1))}{max(self.rows, 1)}"
        tail = f'<autoFilter ref="A1:{last}"/>' if filtered and self.width else ""
        self._write(f"</sheetData>{tail}</worksheet>".encode())
        self.file.write(self._deflate.flush())
        head = f'{self._head[0]}<dimension ref="A1:{last}"/>{self._head[1]}'.encode()
        deflate = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        # A sync flush ends the head on a byte boundary without ending the stream.
        head_deflated = deflate.compress(head) + deflate.flush(zlib.Z_SYNC_FLUSH)
        body_deflated = self.file.tell()
        self.file.seek(0)
        _add_deflated(
            zf,
            name,
            head_deflated,
            self.file,
            size=len(head) + self._size,
            compressed=len(head_deflated) + body_deflated,
            crc=zlib.crc32_combine(zlib.crc32(head), self._crc, self._size),
        )

    def close(self) -> None:
        self.file.close()  # deletes it


def _add_deflated(
    zf: zipfile.ZipFile, name: str, head: bytes, body: IO[bytes], *, size: int, compressed: int, crc: int
) -> None:
    """Add an entry whose data is already deflated (``head`` then ``body``), as
    ``ZipFile.mkdir`` adds one: ``zipfile`` has no public way to take compressed data, so
    this uses the attributes its own methods use (CPython 3.11-3.13). The sizes are known,
    so the local header carries them (ZIP64 when past the limit) and needs no descriptor."""
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o600 << 16
    info.file_size, info.compress_size, info.CRC = size, compressed, crc
    zip64 = size > zipfile.ZIP64_LIMIT or compressed > zipfile.ZIP64_LIMIT
    out = zf.fp
    if out is None:
        raise ValueError("the workbook's ZIP is already closed")
    internals: Any = zf  # the private attributes ZipFile.mkdir uses
    with internals._lock:
        if internals._seekable:
            out.seek(internals.start_dir)
        info.header_offset = out.tell()
        internals._writecheck(info)
        internals._didModify = True
        out.write(info.FileHeader(zip64))
        out.write(head)
        shutil.copyfileobj(body, out, 1 << 20)
        zf.filelist.append(info)
        zf.NameToInfo[name] = info
        internals.start_dir = out.tell()


def _lines_within(block: bytes, most: int) -> tuple[int, int]:
    """How many of ``block``'s lines to take (at most ``most``), and where they end."""
    lines = block.count(b"\n")
    if lines <= most:
        return lines, len(block)
    cut = 0
    for _ in range(most):
        cut = block.index(b"\n", cut) + 1
    return most, cut


def _add_sheet(zf: zipfile.ZipFile, sheet: _SheetFile, index: int, *, filtered: bool) -> None:
    """Add the sheet as ``xl/worksheets/sheet{index}.xml`` and delete its file."""
    try:
        sheet.add_to(zf, f"xl/worksheets/sheet{index}.xml", filtered=filtered)
    finally:
        sheet.close()


def _write_package(zf: zipfile.ZipFile, titles: Sequence[str]) -> None:
    """Workbook, relationships, content types, styles and document properties."""
    sheets = "".join(
        f'<sheet name={quoteattr(title)} sheetId="{i}" r:id="rId{i}"/>' for i, title in enumerate(titles, 1)
    )
    zf.writestr(
        "xl/workbook.xml",
        f'{XML_HEAD}<workbook {NS} {NS_R}><bookViews><workbookView activeTab="0"/></bookViews>'
        f"<sheets>{sheets}</sheets></workbook>",
    )
    relations = "".join(
        f'<Relationship Id="rId{i}" Type="{REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
        for i in range(1, len(titles) + 1)
    )
    relations += f'<Relationship Id="rId{len(titles) + 1}" Type="{REL}/styles" Target="styles.xml"/>'
    package_rels = "http://schemas.openxmlformats.org/package/2006/relationships"
    zf.writestr(
        "xl/_rels/workbook.xml.rels", f'{XML_HEAD}<Relationships xmlns="{package_rels}">{relations}</Relationships>'
    )
    zf.writestr("xl/styles.xml", STYLES)
    zf.writestr(
        "_rels/.rels",
        f'{XML_HEAD}<Relationships xmlns="{package_rels}">'
        f'<Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/>'
        f'<Relationship Id="rId2" Type="{package_rels}/metadata/core-properties" Target="docProps/core.xml"/>'
        f'<Relationship Id="rId3" Type="{REL}/extended-properties" Target="docProps/app.xml"/>'
        "</Relationships>",
    )
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    zf.writestr(
        "docProps/core.xml",
        f"{XML_HEAD}<cp:coreProperties "
        'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<dc:creator>Dossier</dc:creator>"
        f'<dcterms:created xsi:type="dcterms:W3CDTF">{now}</dcterms:created>'
        f'<dcterms:modified xsi:type="dcterms:W3CDTF">{now}</dcterms:modified>'
        "</cp:coreProperties>",
    )
    zf.writestr(
        "docProps/app.xml",
        f'{XML_HEAD}<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
        "<Application>Dossier</Application></Properties>",
    )
    sheet_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{sheet_type}"/>'
        for i in range(1, len(titles) + 1)
    )
    zf.writestr(
        "[Content_Types].xml",
        f'{XML_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        '<Override PartName="/docProps/core.xml" '
        'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        '<Override PartName="/docProps/app.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
        f"{overrides}</Types>",
    )
