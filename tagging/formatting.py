"""Formatting of cell values by data type, shared by the tag preview and every export format.

Two steps: ``coerce`` turns a raw value (from a column or a JSON custom field) into a typed
Python value for a tag's ``data_type`` — numbers stay numbers, dates become ``date`` —
keeping values that do not fit the type as text rather than dropping them. ``as_text``
renders any typed value the way CSV, XLSX text cells and the preview show it.

Identity values skip both steps: ``pseudonymise_raw`` pseudonymises the raw value's JSON text
form, so the same person gets the same pseudonym whatever the tag's data type.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import models

from organizations.pseudonyms import column_pseudonym

LIST_SEPARATOR = "; "
YES, NO = "Yes", "No"
_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}


class Sensitivity(models.TextChoices):
    """Whether a tag's values name or identify a person, and so are pseudonymised.

    Defined here rather than in ``tagging.models`` (which imports it) so that the export
    engine's resolution can use it without loading Django's models.
    """

    STANDARD = "standard", "Standard"
    IDENTITY = "identity", "Identity (names or identifies a person)"


def _to_number(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        try:
            number = Decimal(text)
        except InvalidOperation:
            return value
        if not number.is_finite():
            return value
        return int(number) if number == number.to_integral_value() and "." not in text else number
    return as_text(value)


def _to_date(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            return value
    return as_text(value)


def _to_datetime(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return value
    if isinstance(value, dt.date):
        return value
    return as_text(value)


def _to_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return as_text(value)


def _to_list(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(as_text(v) for v in value if v is not None) or None
    return as_text(value)


def _to_text(value: Any) -> Any:
    return as_text(value)


#: The classes of value each data type's coercer gives back unchanged: a column's values
#: mostly are of them already, and only the others need the call.
COERCED: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "list": (str,),
    "number": (int, float, Decimal),
    "boolean": (bool,),
    "date": (dt.date,),
    "datetime": (dt.datetime, dt.date),
}

COERCERS = {
    "text": _to_text,
    "number": _to_number,
    "date": _to_date,
    "datetime": _to_datetime,
    "boolean": _to_boolean,
    "list": _to_list,
}


def coerce(value: Any, data_type: str) -> Any:
    """The typed value of ``value`` for ``data_type``; None and "" stay missing (None)."""
    if value is None or value == "":
        return None
    return COERCERS[data_type](value)


def as_text(value: Any) -> str:
    """How a typed value reads in a text cell: ISO dates, Yes/No, lists joined with '; '."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return YES if value else NO
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        if not math.isfinite(value):
            return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(value)]
        return repr(value) if value != int(value) or abs(value) >= 1e16 else str(int(value))
    if isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(as_text(v) for v in value if v is not None)
    if isinstance(value, dict):
        import json

        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def raw_text(value: Any) -> str:
    """A raw (JSON or column) scalar as the text its pseudonym is computed over.

    JSON's own spelling, as PostgreSQL's ``#>> '{}'`` gives it: strings as they are,
    ``true``/``false``, ``str`` of integers, floats as their JSON literal without an
    exponent (``7.0`` stays ``7.0``, ``1e-05`` is ``0.00001``);
    any other value (dates, decimals, objects) as ``as_text`` renders it.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # The JSON literal (repr) as a decimal without exponent, as jsonb holds it: 1e-05 is 0.00001.
        return format(Decimal(repr(value)), "f") if math.isfinite(value) else repr(value)
    return as_text(value)


def pseudonymise_raw(value: Any, *, key: bytes, column: str) -> str | None:
    """The pseudonymised text of a raw tag value; None when it has nothing to pseudonymise.

    A list stands for several people: each non-null element is pseudonymised on its own
    and the pseudonyms are joined with ``"; "``. Blank values (and lists of them) are None.
    """
    return _pseudonymised(value, column_pseudonym(key=key, column=column))


def pseudonymiser(*, key: bytes, column: str, remember: int = 4096) -> Callable[[Any], str | None]:
    """``pseudonymise_raw`` for one key and column, remembering the pseudonyms of the last
    ``remember`` texts: the same people recur across a file's cases (one HMAC per person,
    not per cell)."""
    one = functools.lru_cache(maxsize=remember)(column_pseudonym(key=key, column=column))
    return functools.partial(_pseudonymised, one=one)


def _pseudonymised(value: Any, one: Callable[[str], str | None]) -> str | None:
    if value.__class__ is str:  # most values: raw_text of a text is the text
        return one(value)
    if value is None:
        return None
    if isinstance(value, list | tuple):
        # A missing element's text is "", which has no pseudonym: left out like a blank one.
        return LIST_SEPARATOR.join(filter(None, map(one, map(raw_text, value)))) or None
    return one(raw_text(value))
