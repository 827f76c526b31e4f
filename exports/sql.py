"""SQL for an export's cells on PostgreSQL: each column renders its CSV or JSON text in the
database, so COPY can stream whole files (``exports.pushdown``).

The Python row function (``exports.rows``) and the writers are the reference; every
expression here gives the text the CSV or JSONL writer would write for the value the
Python path reads, so both paths write the same bytes. The rules mirrored:

- text as stored; choices by label (else the stored value); datetimes as
  ``datetime.isoformat()`` in the organization's zone (the connection's ``TimeZone``);
  booleans, integers and decimals as their digits;
- CSV: empty as empty, ``Yes``/``No``, and formula neutralisation (OWASP): text starting
  with ``= + - @``, tab, CR or LF gets a ``'`` in front; numbers are never prefixed;
- JSONL: ``null``, ``true``/``false``, decimals as bare numbers; a column whose values are
  strings gives their raw text, which COPY quotes and escapes as JSON does (``exports.pushdown``:
  ``"`` and ``\\`` escaped, a control character escaped on the way); in a column whose values
  are of more than one kind (number and boolean tags) a string is ``to_json``'s;
- tag values from JSON follow ``tagging.formatting``: JSON numbers as Python holds them
  (an integer literal exact, a float literal as ``float``), numeric strings in number tags
  through ``Decimal``'s grammar, ``true``/``yes``/``1``… in boolean tags, lists joined
  with ``"; "``.

Values are named parameters bound by psycopg, never formatted into the SQL text. Known
differences from the Python path, all outside realistic case data (jsonb keeps no literal
form): JSON objects inside tags (PostgreSQL orders object keys differently), lists nested
in lists, whole numbers written with an exponent (``1e3``), fractional floats between
10^15 and 10^16 and whole floats beyond 2^53, ``-0.0`` in a numeric string, and whitespace
other than ASCII around numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from exports.writers.cells import XLSX_CR, xlsx_string_cell
from organizations.pseudonyms import HEX_CHARS as PSEUDONYM_HEX_CHARS
from organizations.pseudonyms import PREFIX as PSEUDONYM_PREFIX
from tagging.formatting import NO, YES

FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r", "\n")
TRUE_WORDS = ("true", "yes", "y", "1", "on")
FALSE_WORDS = ("false", "no", "n", "0", "off")
# Decimal's grammar (digits with single underscores between them), on the trimmed text.
# Exponents are capped at four digits: PostgreSQL's numeric overflows where Python's does not.
NUMERIC_RE = r"^[+-]?([0-9](_?[0-9])*(\.([0-9](_?[0-9])*)?)?|\.[0-9](_?[0-9])*)([eE][+-]?[0-9]{1,4})?$"
SqlFormat = Literal["csv", "jsonl", "parquet", "xlsx"]


class SqlBuilder:
    """Collects the named parameters of a query while its text is assembled, and renders
    typed SQL values as the cells of one file format: CSV text (NULL is an empty cell),
    JSON text, or for Parquet the typed values themselves (datetimes as epoch
    microseconds, tags as the text the Parquet writer stores, never neutralised)."""

    def __init__(self, format: SqlFormat = "csv") -> None:
        self.format = format
        self.params: dict[str, Any] = {}

    @property
    def csv(self) -> bool:
        return self.format == "csv"

    @property
    def typed(self) -> bool:
        return self.format == "parquet"

    def _cell_text(self, text: str) -> str:
        """Text as a string cell: neutralised for a spreadsheet (CSV), as it is for Parquet."""
        return neutralise(text) if self.csv else text

    def _empty_text(self, text: str) -> str:
        """``as_text`` that may be "": an empty CSV cell, an empty string in Parquet and JSONL."""
        return neutralise(f"NULLIF({text}, '')") if self.csv else f"coalesce({text}, '')"

    def param(self, value: Any) -> str:
        """A placeholder for ``value`` (named, so an expression may be repeated)."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    # --- typed values ---------------------------------------------------------------------

    def text(self, ref: str, *, empty_is_null: bool = False) -> str:
        """Stored text. An empty string is an empty CSV cell either way; in JSON it stays
        ``""`` unless the Python path reads it as missing (``empty_is_null``)."""
        return self._text_value(ref, empty_is_null=empty_is_null)

    def _text_value(self, ref: str, *, empty_is_null: bool) -> str:
        if self.csv:
            return neutralise(f"NULLIF({ref}, '')")
        return f"NULLIF({ref}, '')" if empty_is_null else ref

    def pseudonyms(self, text: str) -> str:
        """Pseudonyms (``PSN-`` and hex, joined with ``"; "``): text that needs no care —
        nothing a spreadsheet would run, nothing JSON escapes."""
        return f"NULLIF({text}, '')" if self.csv else text

    def choice(self, ref: str, labels: Mapping[str, str]) -> str:
        """The label of a known value, else the value itself; empty is missing."""
        whens = " ".join(
            f"WHEN {ref} = {self.param(value)} THEN {self.param(label)}" for value, label in labels.items()
        )
        other = neutralise(ref) if self.csv else ref
        return f"CASE WHEN {ref} IS NULL OR {ref} = '' THEN NULL {whens} ELSE {other} END"

    def datetime(self, ref: str) -> str:
        """``datetime.isoformat()`` in the connection's zone: one ``to_char``, where a zero
        microsecond part (which ``isoformat`` leaves out) is the only ``.000000``."""
        if self.typed:
            return f"(extract(epoch FROM {ref}) * 1000000)::bigint"
        return self._iso(ref)

    @staticmethod
    def _iso(ref: str) -> str:
        return f"replace(to_char({ref}, 'YYYY-MM-DD\"T\"HH24:MI:SS.USTZH:TZM'), '.000000', '')"

    def boolean(self, condition: str) -> str:
        if self.typed:
            return f"({condition})"
        yes, no = ("'Yes'", "'No'") if self.csv else ("'true'", "'false'")
        return f"CASE WHEN {condition} THEN {yes} WHEN NOT {condition} THEN {no} END"

    def number(self, ref: str, *, integer: bool = False) -> str:
        """An integer (``integer``: the SQL value is one) or a decimal: its digits (a bare
        JSON number)."""
        if self.typed:
            return f"({ref})"
        return f"({ref})::text"

    def _string(self, text: str) -> str:
        """Text that is a string cell in a column of values of more than one kind:
        neutralised in CSV, a JSON string in JSONL."""
        return f"to_json({text})::text" if self.format == "jsonl" else self._cell_text(text)

    # --- tags on plain fields ---------------------------------------------------------------

    def tag_field(self, ref: str, kind: str | None, data_type: str) -> str | None:
        """A tag reading a plain field of ``kind`` (a Django field class); None: Python only.

        Parquet stores every tag as the text ``as_text`` makes of its value.
        """
        yes_no = f"CASE WHEN {ref} THEN 'Yes' WHEN NOT {ref} THEN 'No' END"
        if data_type == "text" and kind in ("CharField", "TextField"):
            return self._text_value(ref, empty_is_null=True)
        if data_type == "text" and kind == "DateTimeField":
            return self._iso(ref) if self.typed else self.datetime(ref)
        if data_type == "text" and kind == "BooleanField":
            return yes_no
        if data_type == "boolean" and kind == "BooleanField":
            return yes_no if self.typed else self.boolean(ref)
        if data_type == "number" and kind in ("DecimalField", "PositiveSmallIntegerField"):
            return f"({ref})::text" if self.typed else self.number(ref)
        return None

    # --- tags on JSON -----------------------------------------------------------------------

    def json_at(self, document: str, keys: Sequence[str]) -> str:
        """The JSON value at ``keys`` (NULL when missing), walking objects only.

        ``#>`` would also index arrays with a numeric key, where the Python walk stops.
        """
        guards = [
            f"jsonb_typeof({document} #> {self.param(list(keys[:i]))}::text[]) = 'object'"
            for i in range(1, len(keys))
            if keys[i].lstrip("-").isdigit()
        ]
        value = f"({document} #> {self.param(list(keys))}::text[])"
        if guards:
            value = f"CASE WHEN {' AND '.join(guards)} THEN {value} END"
        return value

    @staticmethod
    def _float_literal(raw: str) -> str:
        """Whether the JSON number ``raw`` (jsonb's text of it) came from a float literal."""
        return f"position('.' in {raw}) > 0"

    def json_number_text(self, j: Json) -> str:
        """A JSON number as ``as_text`` prints the value ``json.loads`` makes of it: an
        integer literal exact, a float whole below 10^16 without ``.0``, else ``repr``."""
        return self._json_number(j, whole_float="")

    def json_number_repr(self, j: Json) -> str:
        """A JSON number as the JSONL writer writes the Python value: ``repr``."""
        return self._json_number(j, whole_float=" || '.0'")

    def _json_number(self, j: Json, *, whole_float: str) -> str:
        number = f"({j.text})::float8"
        return (
            f"CASE WHEN NOT {self._float_literal(j.text)} THEN {j.text} "
            f"WHEN {number} = trunc({number}) AND abs({number}) < 1e16 THEN trunc({number})::bigint::text{whole_float} "
            f"ELSE {number}::text END"
        )

    def _numeric_string(self, j: Json) -> tuple[str, str]:
        """For a JSON string: the test that ``Decimal`` reads it (trimmed, commas dropped)
        and the number ``_to_number`` makes of it (an int when whole and written without
        a point, else the exact decimal)."""
        trimmed = f"replace(regexp_replace({j.text}, '^\\s+|\\s+$', '', 'g'), ',', '')"
        digits = f"replace({trimmed}, '_', '')::numeric"
        parsed = (
            f"CASE WHEN position('.' in {trimmed}) = 0 AND {digits} = trunc({digits}) THEN trunc({digits}) "
            f"ELSE {digits} END"
        )
        return f"{trimmed} ~ {self.param(NUMERIC_RE)}", parsed

    def json_scalar_text(self, j: Json) -> str:
        """``as_text`` of a JSON string, number or boolean (arrays and objects as JSON)."""
        return (
            f"CASE {j.kind} WHEN 'string' THEN {j.text} "
            f"WHEN 'number' THEN {self.json_number_text(j)} "
            f"WHEN 'boolean' THEN CASE WHEN {j.text} = 'true' THEN 'Yes' ELSE 'No' END "
            f"WHEN 'null' THEN NULL ELSE {j.value}::text END"
        )

    def json_text(self, j: Json, cell: Callable[[str], str] = str) -> str:
        """``cell`` of ``as_text`` of any JSON value: lists joined with ``"; "``, nulls in
        them left out (an empty list gives NULL here where ``as_text`` gives ``""``).

        A list's ``cell`` is made inside its sub-query, so that a cell reading its text
        twice (neutralised: tested, then written) does not run the sub-query twice."""
        element = Json.of("e.v")
        joined = f"string_agg({self.json_scalar_text(element)}, '; ' ORDER BY e.o)"
        return (
            f"CASE WHEN {j.kind} = 'array' THEN (SELECT {cell(joined)} "
            f"FROM jsonb_array_elements({j.value}) WITH ORDINALITY AS e(v, o) WHERE {element.kind} <> 'null') "
            f"ELSE {cell(self.json_scalar_text(j))} END"
        )

    def tag_json(self, j: Json, data_type: str) -> str | None:
        """A tag's cell from its JSON value, by the tag's data type (None: Python only)."""
        empty = f"{j.kind} IS NULL OR {j.kind} = 'null' OR ({j.kind} = 'string' AND {j.text} = '')"
        if data_type == "text":
            # as_text of anything is a string; of an empty list "" (an empty CSV cell).
            rendered = self._as_text_string(j)
        elif data_type == "list":
            # An empty list is no value.
            if self.csv:
                rendered = self.json_text(j, lambda text: neutralise(f"NULLIF({text}, '')"))
            else:
                as_list = self.json_text(j, lambda text: f"NULLIF({text}, '')")
                rendered = f"CASE WHEN {j.kind} = 'array' THEN {as_list} ELSE {self._as_text_string(j)} END"
        elif data_type == "number":
            rendered = self._tag_number(j)
        elif data_type == "boolean":
            rendered = self._tag_boolean(j)
        else:
            return None
        return f"CASE WHEN {empty} THEN NULL ELSE {rendered} END"

    def _as_text_string(self, j: Json, *, mixed: bool = False) -> str:
        """``as_text`` of any JSON value, as a string cell: a JSON string's text (most
        values) without the other kinds' tests. In a JSONL column of ``mixed`` kinds it is a
        JSON string, a JSON string in the document written as the document holds it: jsonb
        prints a string escaped as ``to_json`` escapes its text, without ``to_json``'s type
        look-up (≈ 200 ns a value)."""
        if mixed and self.format == "jsonl":
            cell: Callable[[str], str] = lambda text: f"to_json(coalesce({text}, ''))::text"  # noqa: E731
            return f"CASE WHEN {j.kind} = 'string' THEN ({j.value})::text ELSE {self.json_text(j, cell)} END"
        cell = self._empty_text
        return f"CASE WHEN {j.kind} = 'string' THEN {cell(j.text)} ELSE {self.json_text(j, cell)} END"

    def _tag_number(self, j: Json) -> str:
        """``tagging.formatting._to_number``: numbers bare, anything else a string cell."""
        numeric, parsed = self._numeric_string(j)
        number = self.json_number_repr(j) if self.format == "jsonl" else self.json_number_text(j)
        return (
            f"CASE {j.kind} "
            f"WHEN 'number' THEN {number} "
            f"WHEN 'boolean' THEN CASE WHEN {j.text} = 'true' THEN '1' ELSE '0' END "
            f"WHEN 'string' THEN CASE WHEN {numeric} THEN ({parsed})::text "
            f"ELSE {self._string(j.text)} END "
            f"ELSE {self._as_text_string(j, mixed=True)} END"
        )

    def _tag_boolean(self, j: Json) -> str:
        """``tagging.formatting._to_boolean``: a boolean, or anything else as a string cell."""
        word = f"lower(regexp_replace({j.text}, '^\\s+|\\s+$', '', 'g'))"
        number = f"({j.text})::numeric"
        yes, no = ("'true'", "'false'") if self.format == "jsonl" else ("'Yes'", "'No'")
        return (
            f"CASE {j.kind} "
            f"WHEN 'boolean' THEN CASE WHEN {j.text} = 'true' THEN {yes} ELSE {no} END "
            f"WHEN 'number' THEN CASE WHEN {number} = 1 THEN {yes} WHEN {number} = 0 THEN {no} "
            f"ELSE {self._string(self.json_number_text(j))} END "
            f"WHEN 'string' THEN CASE WHEN {word} = ANY({self.param(list(TRUE_WORDS))}::text[]) THEN {yes} "
            f"WHEN {word} = ANY({self.param(list(FALSE_WORDS))}::text[]) THEN {no} "
            f"ELSE {self._string(j.text)} END "
            f"ELSE {self._as_text_string(j, mixed=True)} END"
        )

    # --- pseudonyms -----------------------------------------------------------------------

    def normalised(self, text: str) -> str:
        """``organizations.pseudonyms.pseudonym_normalise`` in SQL: trimmed of what
        ``str.isspace`` calls whitespace, lower-cased by Unicode's rules (ICU), whatever the
        database's own collation.

        ASCII text (as many bytes as characters: most e-mail addresses, phone numbers and
        employee ids, many names) takes a road two to three times cheaper to the same text:
        trimmed of the ASCII whitespace, its letters lower-cased byte by byte
        (``COLLATE "C"``), which is all Unicode's rules do to ASCII; ICU converts every text
        to UTF-16 and back. ``text`` is read up to four times: a column, an element, a
        value computed once."""
        spaces = self.param("".join(map(chr, WHITESPACE)))
        ascii_spaces = self.param("".join(map(chr, ASCII_WHITESPACE)))
        return (
            f"CASE WHEN octet_length({text}) = char_length({text}) "
            f'THEN lower(btrim({text}, {ascii_spaces}::text) COLLATE "C") '
            f'ELSE lower(btrim({text}, {spaces}::text) COLLATE "und-x-icu") COLLATE "C" END'
        )

    def pseudonym_of(self, normalised: str, pads: tuple[str, str], column: str) -> str:
        """HMAC-SHA256 from SHA-256 (RFC 2104) over ``column:normalised``, as ``PSN-`` and
        the first 10 hex characters."""
        inner, outer = pads
        message = f"convert_to({self.param(column + ':')}::text || {normalised}, 'UTF8')"
        digest = f"sha256({outer} || sha256({inner} || {message}))"
        # Only the bytes that make the hex characters are encoded (5 % of a pseudonym's time).
        nbytes = -(-PSEUDONYM_HEX_CHARS // 2)
        hex_text = f"encode(substr({digest}, 1, {nbytes:d}), 'hex')"
        if PSEUDONYM_HEX_CHARS % 2:
            hex_text = f"left({hex_text}, {PSEUDONYM_HEX_CHARS:d})"
        return f"'{PSEUDONYM_PREFIX}' || {hex_text}"

    def pseudonym_text(self, text: str, pads: tuple[str, str], column: str) -> str:
        """The pseudonym of a text (NULL when missing or blank)."""
        return (
            f"(SELECT {self.pseudonym_of('q.n', pads, column)} "
            f"FROM (SELECT {self.normalised(text)} AS n) q WHERE q.n <> '')"
        )

    def pseudonym_json(self, j: Json, pads: tuple[str, str], column: str) -> str:
        """A JSON value pseudonymised as ``tagging.resolution.pseudonymise_raw`` does: each
        element of an array, else the value's text (``#>> '{}'``)."""
        element = self.normalised("(e.v #>> '{}')")
        each = (
            f"(SELECT string_agg({self.pseudonym_of('q.n', pads, column)}, '; ' ORDER BY e.o) "
            f"FROM jsonb_array_elements({j.value}) WITH ORDINALITY AS e(v, o) "
            f"CROSS JOIN LATERAL (SELECT {element} AS n) q WHERE q.n <> '')"
        )
        return f"CASE WHEN {j.kind} = 'array' THEN {each} ELSE {self.pseudonym_text(j.text, pads, column)} END"


@dataclass(frozen=True)
class Json:
    """A JSON value in the query, with its type and its text (``#>> '{}'``) at hand:
    computed once per row by the pushdown, read by many branches of a cell."""

    value: str
    kind: str
    text: str

    @classmethod
    def of(cls, value: str) -> Json:
        """Type and text computed where they are used (array elements)."""
        return cls(value, f"jsonb_typeof({value})", f"({value} #>> '{{}}')")


def neutralise(text: str) -> str:
    """Prefix text a spreadsheet would run as a formula with ``'`` (OWASP).

    Every formula character comes before ``A``: when ``text`` is cheap to read again (a
    column, or a column's ``NULLIF``), text starting with a letter (most) is settled by
    one comparison instead of seven. A computed text (a tag's JSON rendered as text) is
    tested once: reading it again would compute it again for every value starting with a
    digit, a number's text among them."""
    test = f"ascii({text}) IN ({_FORMULA_CODES})"
    if _CHEAP_TEXT.fullmatch(text):
        test = f"ascii({text}) < {_FORMULA_BELOW} AND {test}"
    return f"CASE WHEN {test} THEN '''' || {text} ELSE {text} END"


# XML 1.0 cannot hold these (PostgreSQL text never holds NUL or lone surrogates).
XML_ILLEGAL_RE = "[\x01-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
EXCEL_EPOCH_SECONDS = 25_569 * 86_400  # 1899-12-30 to 1970-01-01
EXCEL_MIN_SECONDS = 61 * 86_400  # 1900-03-01: earlier dates are written as text
MICROSECONDS = 1_000_000  # a second's
XLSX_PLAIN_MAX = 16_383  # longer text may pass Excel's 32,767 UTF-16 units
XLSX_ROOM = 32_767 - len("… [truncated]")
# CR and LF as character references: a row of the pushdown stays one COPY line.
XLSX_LINE_BREAKS = {**XLSX_CR, "\n": "&#10;"}
MAX_EXACT_DIGITS = 15
# The characters str.isspace() is true for (xml:space="preserve" when text starts or ends with one).
WHITESPACE = [9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 133, 160, 5760, *range(8192, 8203), 8232, 8233, 8239, 8287, 12288]
ASCII_WHITESPACE = [c for c in WHITESPACE if c < 0x80]  # all an ASCII text can be trimmed of
_SPACE_CLASS = "".join(chr(c) for c in WHITESPACE if c >= 32 and c != 0x7F) + "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
# Text that needs care: a character XML cannot hold or that must be escaped, a formula or
# whitespace at its start, whitespace at its end.
XLSX_CAREFUL_RE = f"[\x01-\x1f\ufffe\uffff&<>]|^[=+@{_SPACE_CLASS}-]|[{_SPACE_CLASS}]$"


# A column reference (``"cases_case"."title"``, ``iv."i0_status"``): cheap to read twice.
_COLUMN = re.compile(r'(?:"\w+"|\w+)\."[^"]+"')
_CHEAP_TEXT = re.compile(rf"{_COLUMN.pattern}|NULLIF\({_COLUMN.pattern}, ''\)")
_FORMULA_CODES = ", ".join(str(ord(c)) for c in FORMULA_FIRST)
_FORMULA_BELOW = max(map(ord, FORMULA_FIRST)) + 1  # every formula character's code is below it


class XlsxSql(SqlBuilder):
    """Cells of an XLSX sheet as SpreadsheetML, one ``<c>`` per column (``<c/>`` when
    empty), as the XLSX writer types the value the Python path reads: text is cleaned,
    neutralised, cut to Excel's limit and escaped; numbers Excel cannot hold exactly are
    text; datetimes are serials of the wall-clock time with the datetime style. Cells carry
    no ``r`` attribute: each follows the one before it.

    The values come from the Parquet rendering (typed values, tags as ``as_text``), which
    this class wraps into cells.
    """

    def __init__(self) -> None:
        super().__init__("parquet")
        self.texts: list[str] = []
        self.datetimes: list[str] = []

    def text(self, ref: str, *, empty_is_null: bool = False) -> str:
        return self.text_cell(ref)

    def choice(self, ref: str, labels: Mapping[str, str]) -> str:
        """A known value's label cell is made here, once; any other value is text."""
        whens = " ".join(
            f"WHEN {ref} = {self.param(value)} THEN {self.constant_cell(label)}" for value, label in labels.items()
        )
        return f"CASE WHEN {ref} IS NULL OR {ref} = '' THEN '<c/>' {whens} ELSE {self.text_cell(ref)} END"

    def datetime(self, ref: str) -> str:
        """The serial of the local wall-clock time, with the writer's float steps (days,
        then seconds and microseconds over 86,400). Microseconds since 1899-12-30 local are
        computed once per row in ``text_stages``, as a bigint: the steps are integer
        division and remainder (no numeric arithmetic per cell), exact, and non-negative
        where a serial is written."""
        self.datetimes.append(ref)
        d = f'xd."d{len(self.datetimes)}"'
        day, second = 86_400 * MICROSECONDS, MICROSECONDS
        serial = (
            f"(({d} / {day})::float8 + ((mod({d}, {day}) / {second})::float8 "
            f"+ mod({d}, {second})::float8 / {second}) / 86400)"
        )
        return (
            # Before 1900-03-01 (never in case data): ISO text, which needs no escaping.
            f"CASE WHEN {d} IS NULL THEN '<c/>' WHEN {d} < {EXCEL_MIN_SECONDS * MICROSECONDS} "
            f"THEN '<c t=\"inlineStr\"><is><t>' || {self._iso(ref)} || '</t></is></c>' "
            f"ELSE '<c s=\"2\"><v>' || {serial}::text || '</v></c>' END"
        )

    def boolean(self, condition: str) -> str:
        yes, no = self.constant_cell(YES), self.constant_cell(NO)
        return f"CASE WHEN {condition} THEN {yes} WHEN NOT {condition} THEN {no} ELSE '<c/>' END"

    def pseudonyms(self, text: str) -> str:
        return self.text_cell(text, plain=True)

    def number(self, ref: str, *, integer: bool = False) -> str:
        return self.number_cell(ref, integer=integer)

    def tag_field(self, ref: str, kind: str | None, data_type: str) -> str | None:
        if data_type == "number" and kind in ("DecimalField", "PositiveSmallIntegerField"):
            return self.number_cell(ref)
        value = super().tag_field(ref, kind, data_type)
        return None if value is None else self.text_cell(value)

    def tag_json(self, j: Json, data_type: str) -> str | None:
        if data_type != "number":
            value = super().tag_json(j, data_type)
            return None if value is None else self.text_cell(value)
        # tagging.formatting._to_number: a number cell for numbers, booleans (1/0) and
        # numeric strings; any other value a text cell of its as_text.
        numeric, parsed = self._numeric_string(j)
        empty = f"{j.kind} IS NULL OR {j.kind} = 'null' OR ({j.kind} = 'string' AND {j.text} = '')"
        return (
            f"CASE WHEN {empty} THEN '<c/>' "
            f"WHEN {j.kind} = 'number' AND {self._float_literal(j.text)} "
            f"THEN '<c><v>' || {self.json_number_repr(j)} || '</v></c>' "
            f"WHEN {j.kind} = 'number' THEN {self.number_cell(f'({j.text})::numeric')} "
            f"WHEN {j.kind} = 'boolean' "
            f"THEN CASE WHEN {j.text} = 'true' THEN '<c><v>1</v></c>' ELSE '<c><v>0</v></c>' END "
            f"WHEN {j.kind} = 'string' AND {numeric} THEN {self.number_cell(parsed)} "
            f"ELSE {self.text_cell(self._as_text_string(j))} END"
        )

    # --- cells ------------------------------------------------------------------------------

    def constant_cell(self, text: str) -> str:
        """The cell of a text known when the query is compiled (a label, Yes/No), made safe
        here as the XLSX writer makes it."""
        cell = xlsx_string_cell(text, escapes=XLSX_LINE_BREAKS)
        return self.param(cell) if cell else "'<c/>'"

    def number_cell(self, ref: str, *, integer: bool = False) -> str:
        """A number, or text when Excel would lose digits (more than 15 significant ones;
        for an integer, as the writer tests it: 10**15 or more)."""
        if integer:
            fits = f"abs({ref}) < {10**MAX_EXACT_DIGITS}"
        else:
            digits = f"length(ltrim(replace(replace(abs({ref})::text, '.', ''), '-', ''), '0'))"
            fits = f"{digits} <= {MAX_EXACT_DIGITS}"
        return (
            f"CASE WHEN {ref} IS NULL THEN '<c/>' WHEN {fits} "
            f"THEN '<c><v>' || ({ref})::text || '</v></c>' "
            f"ELSE '<c t=\"inlineStr\"><is><t>' || ({ref})::text || '</t></is></c>' END"
        )

    def text_cell(self, text: str, *, plain: bool = False) -> str:
        """An inline-string cell of ``text`` (computed once per row in ``text_stages``),
        made safe as ``cells.xlsx_text`` does: cleaned, neutralised, cut to Excel's limit,
        then escaped (CR and LF as character references, so that a row stays one COPY line).

        Most text needs none of that: one regular expression tells, as in the writer; text
        known to need none (``plain``: Yes/No, pseudonyms) skips the test.
        """
        if _COLUMN.fullmatch(text):
            v = text  # a column of a row read once: nothing to compute once per row
        else:
            self.texts.append(text)
            v = f'x1."t{len(self.texts)}"'
        if plain:
            return (
                f"CASE WHEN {v} IS NULL OR {v} = '' THEN '<c/>' "
                f"ELSE '<c t=\"inlineStr\"><is><t>' || {v} || '</t></is></c>' END"
            )
        plain_test = f"octet_length({v}) <= {XLSX_PLAIN_MAX} AND {v} !~ {self.param(XLSX_CAREFUL_RE)}"
        return (
            f"CASE WHEN {v} IS NULL OR {v} = '' THEN '<c/>' "
            f"WHEN {plain_test} THEN '<c t=\"inlineStr\"><is><t>' || {v} || '</t></is></c>' "
            f"ELSE {self._careful_cell(v)} END"
        )

    def _careful_cell(self, v: str) -> str:
        illegal, marker = self.param(XML_ILLEGAL_RE), self.param("… [truncated]")
        astral = "'[\\U00010000-\\U0010FFFF]'"
        cleaned = f"regexp_replace({v}, {illegal}, '', 'g')"
        safe = neutralise(cleaned)
        units = f"length({safe}) + regexp_count({safe}, {astral})"
        shorter = f"left({safe}, {XLSX_ROOM} - regexp_count(left({safe}, {XLSX_ROOM}), {astral}))"
        fits = f"length({safe}) <= {XLSX_PLAIN_MAX} OR {units} <= 32767"
        cut = f"CASE WHEN {fits} THEN {safe} ELSE {shorter} || {marker} END"
        escaped = (
            f"replace(replace(replace(replace(replace({cut}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), "
            "chr(13), '&#13;'), chr(10), '&#10;')"
        )
        spaces = self.param(WHITESPACE)
        space = (
            f"CASE WHEN ascii({cut}) = ANY({spaces}::int[]) OR ascii(right({cut}, 1)) = ANY({spaces}::int[]) "
            "THEN ' xml:space=\"preserve\"' ELSE '' END"
        )
        return (
            f"CASE WHEN {cleaned} = '' THEN '<c/>' "
            f"ELSE '<c t=\"inlineStr\"><is><t' || {space} || '>' || {escaped} || '</t></is></c>' END"
        )

    def text_stages(self) -> list[str]:
        """LATERAL joins computing the datetimes' microseconds and the text cells' values once
        per row (PostgreSQL would otherwise evaluate an expression once per use)."""
        joins = []
        if self.datetimes:
            seconds = ", ".join(
                f"(extract(epoch FROM ({ref})::timestamp) * {MICROSECONDS})::bigint "
                f'+ {EXCEL_EPOCH_SECONDS * MICROSECONDS} AS "d{k}"'
                for k, ref in enumerate(self.datetimes, 1)
            )
            joins.append(f"CROSS JOIN LATERAL (SELECT {seconds} OFFSET 0) xd")
        if self.texts:
            values = ", ".join(f'{text} AS "t{k}"' for k, text in enumerate(self.texts, 1))
            joins.append(f"CROSS JOIN LATERAL (SELECT {values} OFFSET 0) x1")
        return joins
