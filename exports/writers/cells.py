"""Cell rendering shared by the writers: text, formula neutralisation and spreadsheet limits.

Why neutralise: a spreadsheet executes a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and, after a tab, CR or LF in some importers) as a formula, so case text written by a
reporter could run ``=HYPERLINK(...)`` or DDE payloads on an analyst's machine (OWASP
"CSV injection"). Text cells starting with one of those characters get a leading ``'``;
real numbers are written as numbers and never prefixed, so ``-12.5`` stays ``-12.5``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from tagging.formatting import as_text

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
NEUTRALISER = "'"

# Excel's limit counts UTF-16 code units, so an emoji takes two of the 32,767.
XLSX_MAX_TEXT = 32_767
TRUNCATION_MARKER = "… [truncated]"

# openpyxl's ILLEGAL_CHARACTERS_RE plus what lxml refuses to serialise: lone surrogates
# and the non-characters U+FFFE/U+FFFF. Tab, LF and CR are legal XML and kept.
ILLEGAL_XML_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

# XML readers turn a raw CR into LF: a CR in text is written as a character reference.
XLSX_CR = {"\r": "&#13;"}

_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def text(value: Any) -> str:
    """``as_text`` that also survives NaN and infinities (which ``as_text`` cannot render)."""
    if value.__class__ is float and not math.isfinite(value):
        return _NON_FINITE[repr(value)]
    return as_text(value)


def is_number(value: Any) -> bool:
    """True for a finite number (int, float, Decimal); never for a bool, NaN or an infinity."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Decimal):
        return value.is_finite()
    return False


def neutralise(value: str) -> str:
    """Prefix text a spreadsheet would run as a formula with ``'`` (OWASP)."""
    return NEUTRALISER + value if value.startswith(FORMULA_PREFIXES) else value


def spreadsheet_text(value: Any) -> str:
    """The text of a CSV cell: numbers as they are, any other text neutralised."""
    if value.__class__ is str:
        return NEUTRALISER + value if value.startswith(FORMULA_PREFIXES) else value
    if value is None:
        return ""
    if is_number(value):
        return text(value)
    # Including "-Infinity": a spreadsheet would read it as a formula (and show #NAME?).
    return neutralise(text(value))


def clean_xml_text(value: str) -> str:
    """Text without the characters an XLSX (XML) part cannot hold."""
    if ILLEGAL_XML_RE.search(value) is not None:
        return ILLEGAL_XML_RE.sub("", value)
    return value


def truncate_xlsx_text(value: str) -> str:
    """Text cut to Excel's cell limit, ending with a visible marker when it was cut."""
    # Cheap test first: only strings longer than half the limit can exceed it in UTF-16.
    if len(value) <= XLSX_MAX_TEXT // 2:
        return value
    units = value.encode("utf-16-le", errors="surrogatepass")
    if len(units) <= 2 * XLSX_MAX_TEXT:
        return value
    room = XLSX_MAX_TEXT - len(TRUNCATION_MARKER.encode("utf-16-le")) // 2
    # "ignore" drops a surrogate pair cut in half rather than leaving half an emoji.
    return units[: 2 * room].decode("utf-16-le", errors="ignore") + TRUNCATION_MARKER


def xlsx_text(value: str) -> str:
    """Text for an XLSX string cell: cleaned, neutralised, then cut to fit.

    Cleaning comes first so that a control character cannot hide a leading ``=``.
    """
    return truncate_xlsx_text(neutralise(clean_xml_text(value)))


def xlsx_string_cell(value: str, attributes: str = "", escapes: Mapping[str, str] = XLSX_CR) -> str:
    """An inline-string ``<c>`` of ``value`` made safe (``xlsx_text``), with ``attributes``
    (`` r="B7"``…) and ``escapes`` beyond XML's own; "" when nothing is left of the text."""
    value = xlsx_text(value)
    if not value:
        return ""
    space = ' xml:space="preserve"' if value[0].isspace() or value[-1].isspace() else ""
    return f'<c{attributes} t="inlineStr"><is><t{space}>{escape(value, escapes)}</t></is></c>'
