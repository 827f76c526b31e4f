"""Datetimes shown in the organization's zone as ISO text, straight from SQLite's stored text.

A text file (CSV, JSONL) shows an aware datetime as its ``isoformat()`` in the
organization's zone. Made the general way — parse the stored UTC text, ``astimezone``,
``isoformat`` — that is 2 µs a value, six to nine values a case: the largest cost left in a
SQLite export's Python rows. Within one UTC hour a zone's offset is almost always one whole
number of hours, and then the local text is the stored text with its date and hour replaced
and the offset appended: the date and hour are looked up once per hour (``_Hours``) and each
value is two slices and a concatenation (0.4 µs).

Any hour where that does not hold — a zone offset by a fraction of an hour (India, Nepal…),
an hour holding a transition that is not on its boundary, text not as Django stores it — and
any value that is not stored text (PostgreSQL's datetimes) is made the general way.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

_HOUR = re.compile(r"\d{4}-\d\d-\d\d \d\d")
_STORED_LENGTHS = frozenset({19, 26})  # 2026-03-10 09:30:00[.123456]
_TO_HOUR_END = dt.timedelta(minutes=59, seconds=59, microseconds=999_999)


class _Hours(dict[str, tuple[str, str] | None]):
    """A UTC hour's stored text (``2026-03-29 00``) → its local date and hour in ISO
    (``2026-03-29T00``) and the offset's ISO text (``+00:00``), or None when the hour's
    values must be made the general way."""

    def __init__(self, zone: dt.tzinfo) -> None:
        super().__init__()
        self.zone = zone

    def __missing__(self, hour: str) -> tuple[str, str] | None:
        found = self[hour] = self._local(hour)
        return found

    def _local(self, hour: str) -> tuple[str, str] | None:
        if _HOUR.fullmatch(hour) is None:
            return None
        try:
            start = dt.datetime.fromisoformat(hour + ":00:00+00:00")
        except ValueError:
            return None
        first, last = start.astimezone(self.zone), (start + _TO_HOUR_END).astimezone(self.zone)
        offset = first.utcoffset()
        if offset is None or offset != last.utcoffset() or offset % dt.timedelta(hours=1):
            return None
        shown = first.isoformat()  # 2026-03-29T02:00:00+01:00: no microseconds at the hour
        return shown[:13], shown[19:]


class LocalIsoText:
    """Stored datetimes → their ISO text in ``zone``, as ``astimezone(zone).isoformat()``
    gives it; None stays None."""

    def __init__(self, zone: dt.tzinfo) -> None:
        self.zone = zone
        self._hours = _Hours(zone)

    def __call__(self, values: Sequence[Any]) -> list[str | None]:
        hours = self._hours
        # Django's text has 19 or 26 characters (microseconds only when not 0); the hour's
        # part of it is checked when the hour is first met.
        try:
            if _STORED_LENGTHS.issuperset(map(len, filter(None, values))):
                return [None if v is None else (h := hours[v[:13]])[0] + v[13:] + h[1] for v in values]  # type: ignore[index]
        except TypeError:  # a value not text (a datetime has no len), or an hour made the general way (None)
            pass
        general = self.general
        return [None if v is None else general(v) for v in values]

    def general(self, value: Any) -> str:
        """One value the general way: stored UTC text (Django's, on SQLite) or an aware datetime."""
        if value.__class__ is str:
            value = dt.datetime.fromisoformat(value)
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(self.zone).isoformat()  # type: ignore[no-any-return]
