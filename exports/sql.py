"""SQL for an export's cells on PostgreSQL: each column renders its CSV text in the database.

The Python row function (``exports.rows``) is the reference; every expression here gives
the same text the CSV writer would write for the value the Python path reads, so the
pushdown path (``exports.pushdown``) writes the same bytes. The rules mirrored, column type
by column type:

- text: as stored, empty as empty, formula neutralisation (OWASP): a leading ``= + - @``,
  tab, CR or LF gets a ``'`` in front;
- choices: the label of a known value, else the value (neutralised);
- datetimes: ISO 8601 in the organization's zone with the offset, microseconds only when
  present (``datetime.isoformat``); the connection's ``TimeZone`` is set to the zone;
- booleans ``Yes``/``No``; integers and decimals as their digits (never neutralised);
- tag values from JSON follow ``tagging.formatting``: JSON numbers as Python prints them
  (``1500.0`` → ``1500``), numeric strings in number tags through ``Decimal``'s grammar,
  ``true``/``yes``/``1``… in boolean tags, lists joined with ``"; "``.

Values are named parameters bound by psycopg on the client, never formatted into the
SQL text. Known differences from the Python path, all outside realistic case data: JSON
objects inside tags (PostgreSQL orders object keys differently), lists nested in lists,
fractional floats between 10^15 and 10^16 or integral floats from 10^16 on written with an
exponent, ``-0.0`` in a numeric string, and whitespace other than ASCII around numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r", "\n")
TRUE_WORDS = ("true", "yes", "y", "1", "on")
FALSE_WORDS = ("false", "no", "n", "0", "off")
# Decimal's grammar (digits with single underscores between them), on the trimmed text.
# Exponents are capped at four digits: PostgreSQL's numeric overflows where Python's does not.
NUMERIC_RE = r"^[+-]?([0-9](_?[0-9])*(\.([0-9](_?[0-9])*)?)?|\.[0-9](_?[0-9])*)([eE][+-]?[0-9]{1,4})?$"


class SqlBuilder:
    """Collects the named parameters of a query while its text is assembled."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def param(self, value: Any) -> str:
        """A placeholder for ``value`` (named, so an expression may be repeated)."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    # --- cell renderings (text or NULL) ---------------------------------------------------

    def text(self, ref: str) -> str:
        """Stored text, empty as NULL, neutralised."""
        return neutralise(f"NULLIF({ref}, '')")

    def choice(self, ref: str, labels: Mapping[str, str]) -> str:
        """The label of a known value, else the value itself (neutralised)."""
        whens = " ".join(
            f"WHEN {ref} = {self.param(value)} THEN {self.param(label)}" for value, label in labels.items()
        )
        return f"CASE WHEN {ref} IS NULL OR {ref} = '' THEN NULL {whens} ELSE {neutralise(ref)} END"

    @staticmethod
    def datetime(ref: str) -> str:
        """``datetime.isoformat()`` of the value in the connection's zone.

        One ``to_char``; a zero microsecond part (which ``isoformat`` leaves out) is the only
        place ``.000000`` can appear.
        """
        return f"replace(to_char({ref}, 'YYYY-MM-DD\"T\"HH24:MI:SS.USTZH:TZM'), '.000000', '')"

    @staticmethod
    def boolean(ref: str) -> str:
        return f"CASE WHEN {ref} THEN 'Yes' WHEN NOT {ref} THEN 'No' END"

    @staticmethod
    def number(ref: str) -> str:
        return f"({ref})::text"

    # --- JSON (tag values) ----------------------------------------------------------------

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
    def json_number_text(value: str) -> str:
        """A JSON number as ``as_text`` prints the Python value ``json.loads`` makes of it.

        An integer literal keeps its digits; a float literal prints like ``float``: whole
        values below 10^16 without ``.0``, others as ``repr``.
        """
        raw = f"({value} #>> '{{}}')"
        as_float = f"({raw})::float8"
        return (
            f"CASE WHEN position('.' in {raw}) = 0 THEN {raw} "
            f"WHEN {as_float} = trunc({as_float}) AND abs({as_float}) < 1e16 THEN trunc({as_float})::bigint::text "
            f"ELSE {as_float}::text END"
        )

    def json_scalar_text(self, value: str) -> str:
        """``as_text`` of a JSON string, number or boolean (arrays and objects as JSON)."""
        return (
            f"CASE jsonb_typeof({value}) WHEN 'string' THEN {value} #>> '{{}}' "
            f"WHEN 'number' THEN {self.json_number_text(value)} "
            f"WHEN 'boolean' THEN CASE WHEN {value} = 'true'::jsonb THEN 'Yes' ELSE 'No' END "
            f"WHEN 'null' THEN NULL ELSE {value}::text END"
        )

    def json_text(self, value: str) -> str:
        """``as_text`` of any JSON value: lists joined with ``"; "``, nulls in them left out."""
        return (
            f"CASE WHEN jsonb_typeof({value}) = 'array' THEN "
            f"(SELECT string_agg({self.json_scalar_text('e.v')}, '; ' ORDER BY e.o) "
            f"FROM jsonb_array_elements({value}) WITH ORDINALITY AS e(v, o) WHERE jsonb_typeof(e.v) <> 'null') "
            f"ELSE {self.json_scalar_text(value)} END"
        )

    def tag_json(self, value: str, data_type: str) -> str | None:
        """A tag's CSV text from its JSON value, by the tag's data type (None: not in SQL)."""
        empty = f"{value} IS NULL OR jsonb_typeof({value}) = 'null' OR {value} = '\"\"'::jsonb"
        if data_type == "text" or data_type == "list":
            rendered = neutralise(f"NULLIF({self.json_text(value)}, '')")
        elif data_type == "number":
            rendered = self._tag_number(value)
        elif data_type == "boolean":
            rendered = self._tag_boolean(value)
        else:
            return None
        return f"CASE WHEN {empty} THEN NULL ELSE {rendered} END"

    def _tag_number(self, value: str) -> str:
        """``tagging.formatting._to_number`` then the CSV cell: numbers bare, text neutralised."""
        string = f"({value} #>> '{{}}')"
        trimmed = f"replace(regexp_replace({string}, '^\\s+|\\s+$', '', 'g'), ',', '')"
        digits = f"replace({trimmed}, '_', '')::numeric"
        parsed = (
            f"CASE WHEN position('.' in {trimmed}) = 0 AND {digits} = trunc({digits}) "
            f"THEN trunc({digits})::text ELSE {digits}::text END"
        )
        return (
            f"CASE jsonb_typeof({value}) "
            f"WHEN 'number' THEN {self.json_number_text(value)} "
            f"WHEN 'boolean' THEN CASE WHEN {value} = 'true'::jsonb THEN '1' ELSE '0' END "
            f"WHEN 'string' THEN CASE WHEN {trimmed} ~ {self.param(NUMERIC_RE)} THEN {parsed} "
            f"ELSE {neutralise(string)} END "
            f"ELSE {neutralise(f'NULLIF({self.json_text(value)}, {chr(39) * 2})')} END"
        )

    def _tag_boolean(self, value: str) -> str:
        """``tagging.formatting._to_boolean`` then the CSV cell."""
        string = f"({value} #>> '{{}}')"
        word = f"lower(regexp_replace({string}, '^\\s+|\\s+$', '', 'g'))"
        number = f"({string})::numeric"
        return (
            f"CASE jsonb_typeof({value}) "
            f"WHEN 'boolean' THEN CASE WHEN {value} = 'true'::jsonb THEN 'Yes' ELSE 'No' END "
            f"WHEN 'number' THEN CASE WHEN {number} = 1 THEN 'Yes' WHEN {number} = 0 THEN 'No' "
            f"ELSE {neutralise(self.json_number_text(value))} END "
            f"WHEN 'string' THEN CASE WHEN {word} = ANY({self.param(list(TRUE_WORDS))}::text[]) THEN 'Yes' "
            f"WHEN {word} = ANY({self.param(list(FALSE_WORDS))}::text[]) THEN 'No' "
            f"ELSE {neutralise(string)} END "
            f"ELSE {neutralise(f'NULLIF({self.json_text(value)}, {chr(39) * 2})')} END"
        )


def neutralise(text: str) -> str:
    """Prefix text a spreadsheet would run as a formula with ``'`` (OWASP)."""
    firsts = ", ".join(f"chr({ord(c)})" for c in FORMULA_FIRST)
    return f"CASE WHEN left({text}, 1) IN ({firsts}) THEN '''' || {text} ELSE {text} END"
