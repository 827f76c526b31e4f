"""Reading the database fast: cases read in chunks with only the needed fields, their
investigations and parties fetched once per chunk, and an export's columns compiled once
into functions that each make a column's values for a whole chunk (``columns.Block``) —
never a query per row, never a dict per row, never a function call per cell.

Each chunk is its own short statement, keyed on the export's order ``(created_at, id)``
(keyset pagination), never one long cursor: on SQLite a connection that holds a read
snapshot cannot write after another process committed (SQLITE_BUSY at once, whatever the
busy timeout), so a long read would break the worker's own heartbeat as soon as another
job, the tick or django-q2 writes. Memory holds one chunk at a time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import json
import json.scanner
import re
import threading
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from django.db import connection
from django.db.models import Case as SqlCase
from django.db.models import F, Field, Func, JSONField, Model, Q, QuerySet, TextField, Value, When
from django.db.models.expressions import Expression, RawSQL
from django.db.models.functions import Cast

from cases.models import PARTY_PSEUDONYM_COLUMNS, Case, Investigation, Party
from exports.columns import PSEUDONYMS_PREFIX, Block, ExportColumn, JsonKeys, Layout, export_columns
from exports.columns_base import Column, IdentityMode, Sensitivity
from exports.local_time import LocalIsoText
from exports.party_pseudonyms import pseudonym_stamp, stored_field
from exports.writers.base import rows_of
from tagging.formatting import pseudonymiser

CHUNK_SIZE = 2000


Converter = Callable[[Any], Any]


def fetch(query: QuerySet[Any], convert: Sequence[tuple[int, Converter]]) -> list[Sequence[Any]]:
    """The rows of a ``values_list`` query, converted only where the database's value is not
    yet the Python one (Django's per-row converter loop costs more than reading the rows)."""
    sql, params = query.query.sql_with_params()
    return fetch_sql(sql, params, convert)


def fetch_sql(
    sql: str,
    params: Sequence[Any],
    convert: Sequence[tuple[int, Converter]],
    keep: Callable[[Sequence[Any]], bool] | None = None,
) -> list[Sequence[Any]]:
    """``fetch`` of compiled SQL; only the rows ``keep`` keeps, when given."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if keep is not None:
        rows = list(filter(keep, rows))
    if not convert:
        return rows
    out: list[Sequence[Any]] = []
    for raw in rows:
        row = list(raw)
        for i, to_python in convert:
            if row[i] is not None:
                row[i] = to_python(row[i])
        out.append(row)
    return out


def converters(
    model: type[Model], lookups: Sequence[str], paths: Mapping[str, Sequence[JsonKeys]] | None = None
) -> list[tuple[int, Converter]]:
    """(index, function) for each lookup whose raw database value needs converting: Django's
    own converters for the field, but for JSON, and for datetimes and booleans on SQLite,
    which are converted directly (Django's generic converters cost more than reading the row).
    A JSON field read at ``paths`` becomes the list of the values at its paths (``selected``)."""
    found: list[tuple[int, Converter]] = []
    for i, lookup in enumerate(lookups):
        if paths and lookup in paths:
            found.append((i, _json_array if database_reads_json() else functools.partial(_walked, paths[lookup])))
            continue
        field = _field(model, lookup)
        if connection.vendor == "sqlite" and field.get_internal_type() == "DateTimeField":
            found.append((i, _sqlite_datetime))
            continue
        if connection.vendor == "sqlite" and field.get_internal_type() == "BooleanField":
            found.append((i, _sqlite_boolean))
            continue
        if isinstance(field, JSONField) and field.decoder is None:
            found.append((i, _json))
            continue
        column = field.get_col(field.model._meta.db_table)
        django = [*connection.ops.get_db_converters(column), *field.get_db_converters(connection)]  # type: ignore[attr-defined]
        if django:
            found.append((i, functools.partial(_apply, django, column)))
    return found


def selected(
    model: type[Model], lookups: Sequence[str], paths: Mapping[str, Sequence[JsonKeys]] | None = None
) -> list[str | Expression]:
    """What a ``values_list`` of ``lookups`` selects: on SQLite, datetimes as their stored
    text (``converters`` parses it in C; the sqlite3 module's own converter for a datetime
    column is a Python function per value), and a JSON field read at ``paths`` as the values
    at those paths (``JsonAt``)."""
    if connection.vendor != "sqlite":
        return list(lookups)
    chosen: list[str | Expression] = []
    for lookup in lookups:
        if paths and lookup in paths and database_reads_json():
            chosen.append(JsonAt(lookup, paths[lookup]))
        elif _field(model, lookup).get_internal_type() == "DateTimeField":
            chosen.append(Cast(lookup, TextField()))
        else:
            chosen.append(lookup)
    return chosen


def database_reads_json() -> bool:
    """Whether the database reads a JSON field's values at their paths (``JsonAt``);
    elsewhere the document is parsed and walked here."""
    return connection.vendor == "sqlite"


class JsonAt(Func):
    """SQLite: the JSON values at ``paths`` of a JSON column, as the text of one JSON array
    (``json_extract`` of several paths): SQLite reads the document in C and sends only the
    values read, each as its JSON text (a number's literal as stored), so Python parses a
    short array instead of a whole document (3 against 15 µs a case) and walks nothing.

    Paths are objects' keys only (``$."a"."b"``), as the walk in Python goes. Django keeps
    only documents SQLite reads in a JSON column (its ``JSON_VALID`` check constraint).
    """

    output_field = TextField()

    def __init__(self, lookup: str, paths: Sequence[JsonKeys]) -> None:
        super().__init__(F(lookup))
        # One path would give the value itself, not an array of it.
        self.paths = [json_path(keys) for keys in paths] * (2 if len(paths) == 1 else 1)

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        document, params = compiler.compile(self.source_expressions[0])
        return f"json_extract({document}, {', '.join(['%s'] * len(self.paths))})", [*params, *self.paths]


# The C scanner behind json.loads, with json.loads's settings: the text comes from
# json_extract, whole and well formed, so the checks and frames around it (half the time of
# a short array) are skipped.
_scan_json = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _json_array(text: str) -> list[Any]:
    """The values a ``JsonAt`` read, from its JSON array."""
    return _scan_json(text, 0)[0]  # type: ignore[no-any-return]


def json_path(keys: JsonKeys) -> str:
    """SQLite's JSON path of object keys. SQLite compares a quoted key with the key as the
    document spells it: keys as ``tagging.paths`` allows them (ASCII letters, digits, ``_``
    and ``-``) are spelled one way only."""
    if not all(re.fullmatch(r"[A-Za-z0-9_-]+", key) for key in keys):
        raise ValueError(f"cannot read {keys!r} as a SQLite JSON path")
    return "$" + "".join(f'."{key}"' for key in keys)


def _walked(paths: Sequence[JsonKeys], value: Any) -> list[Any]:
    """The values at ``paths`` of a JSON document (its text, or already parsed), walking
    objects only, level by level (a missing key or a non-object on the way: None)."""
    document = _json(value)
    found = []
    for keys in paths:
        at = document
        for key in keys:
            at = at.get(key) if at.__class__ is dict else None
        found.append(at)
    return found


def _apply(steps: Sequence[Callable[[Any, Any, Any], Any]], column: Any, value: Any) -> Any:
    for step in steps:
        value = step(value, column, connection)
    return value


def _field(model: type[Model], lookup: str) -> Field[Any, Any]:
    """The model field a ``values_list`` lookup ends on (``primary_riu__received_at``…)."""
    *path, name = lookup.split("__")
    for step in path:
        model = model._meta.get_field(step).related_model  # type: ignore[assignment]
    return model._meta.get_field(name)  # type: ignore[return-value]


def _json(value: Any) -> Any:
    """``JSONField.from_db_value`` without its per-value checks: text that is not JSON stays text."""
    if value.__class__ is not str:
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


_BOOLEANS = {0: False, 1: True}


def _sqlite_boolean(value: Any) -> Any:
    """SQLite's 0/1 as a bool (Django's converter, without its per-value overhead)."""
    return _BOOLEANS.get(value, value)


def _sqlite_datetime(value: Any) -> dt.datetime:
    """Django stores aware datetimes on SQLite as UTC text (``2026-03-10 09:30:00.123456``)."""
    if value.__class__ is str:
        try:
            return dt.datetime.fromisoformat(value + "+00:00")  # much faster than .replace(tzinfo=)
        except ValueError:
            value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


ROWS_GC_THRESHOLD = 50_000  # container objects made between two collections of the youngest


class _Collector:
    """Python's cyclic garbage collector, tuned while exports make rows (``collecting_rarely``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exports = 0  # exports making rows in this process
        self._saved = gc.get_threshold()

    @contextlib.contextmanager
    def rarely(self) -> Iterator[None]:
        """The objects that exist when the export starts are left out of the collections
        (``gc.freeze``), and the youngest objects are collected every ``ROWS_GC_THRESHOLD``
        containers made, not every 700.

        A chunk of rows is some hundred thousand lists and tuples alive at once, none in a
        reference cycle: with the default thresholds the collector kept walking them, and
        each full collection walked the whole process's heap too (Django, its models, the
        modules). Cycles are still collected, less often. Forked part processes
        (``exports.forked``) inherit the settings, and the frozen objects stay untouched in
        pages they share with the parent. The defaults come back when the process's last
        export ends."""
        with self._lock:
            if not self._exports:
                self._saved = gc.get_threshold()
                gc.freeze()
                gc.set_threshold(ROWS_GC_THRESHOLD, *self._saved[1:])
            self._exports += 1
        try:
            yield
        finally:
            with self._lock:
                self._exports -= 1
                if not self._exports:
                    gc.set_threshold(*self._saved)
                    gc.unfreeze()


collecting_rarely = _Collector().rarely


class OfCases:
    """A ``values_list`` query (``case_id`` first) of the rows that belong to some cases,
    compiled once; each chunk's case ids are bound as one parameter (a JSON array on SQLite,
    an array on PostgreSQL). Django prepares an ``IN`` list value by value and the database
    parses a placeholder per case: a chunk's investigations and parties took 29–32 ms this
    way against 14 ms.

    When a chunk's ids are nearly consecutive (cases recorded in order, as they usually
    are), the rows are read over the range of ids instead, one index range instead of a
    look-up per case (SQLite: 12 against 7 µs a case for the investigations, 14 against 6
    for the parties), and the rows of cases outside the chunk are dropped."""

    DENSE = 2  # at most this many ids in the range per id of the chunk

    def __init__(self, query: QuerySet[Any]) -> None:
        marker, low, high = object(), object(), object()
        sqlite = connection.vendor == "sqlite"
        ids = RawSQL("SELECT value FROM json_each(%s)" if sqlite else "SELECT unnest(%s::bigint[])", (marker,))
        sql, params = query.filter(case_id__in=ids).query.sql_with_params()
        self.sql, self.params = sql, list(params)
        self._at = _index(self.params, marker)
        self._bind: Callable[[list[int]], Any] = json.dumps if sqlite else list
        between = {"case_id__gte": RawSQL("%s", (low,)), "case_id__lte": RawSQL("%s", (high,))}
        sql, params = query.filter(**between).query.sql_with_params()
        self.range_sql, self.range_params = sql, list(params)
        self._low, self._high = _index(self.range_params, low), _index(self.range_params, high)

    def fetch(self, case_ids: list[int], convert: Sequence[tuple[int, Converter]] = ()) -> list[Sequence[Any]]:
        low, high = min(case_ids, default=0), max(case_ids, default=0)
        if not case_ids or high - low + 1 > self.DENSE * len(case_ids):
            params = self.params.copy()
            params[self._at] = self._bind(case_ids)
            return fetch_sql(self.sql, params, convert)
        params = self.range_params.copy()
        params[self._low], params[self._high] = low, high
        wanted = set(case_ids)
        keep = None if len(wanted) == high - low + 1 else (lambda row: row[0] in wanted)
        return fetch_sql(self.range_sql, params, convert, keep)


def _index(params: list[Any], marker: object) -> int:
    return next(i for i, param in enumerate(params) if param is marker)


def _paths(read: Iterable[tuple[str, JsonKeys] | None]) -> dict[str, list[JsonKeys]]:
    """The paths read in each JSON field, each once, in a stable order."""
    paths: dict[str, list[JsonKeys]] = {}
    for field, keys in sorted({path for path in read if path is not None}):
        paths.setdefault(field, []).append(keys)
    return paths


def _party_read(lookup: str) -> tuple[str, str, str, bool]:
    """``party_lookup``'s parts: ``party``/``parties``, the role, the field, and whether the
    pseudonyms are read."""
    pseudonyms = lookup.startswith(PSEUDONYMS_PREFIX)
    kind, role, field = lookup.removeprefix(PSEUDONYMS_PREFIX).split(":")
    return kind, role, field, pseudonyms


class RowPlan:
    """One export's columns, compiled: what it reads and the function that makes its rows."""

    def __init__(
        self,
        *,
        dataset: str,
        options: Mapping[str, Any],
        snapshot: Sequence[Mapping[str, Any]],
        timezone: str,
        now: dt.datetime,
        pseudonym_key: bytes | None = None,
        datetimes_as_text: bool = False,
    ) -> None:
        """``datetimes_as_text``: the file shows a datetime as its ISO text (CSV, JSONL),
        and the datetime columns give that text (``exports.local_time``)."""
        self.dataset = dataset
        self.pseudonym_key = pseudonym_key
        self.export_columns: list[ExportColumn] = export_columns(dataset=dataset, options=options, snapshot=snapshot)
        self.columns: list[Column] = [c.column for c in self.export_columns]
        self.pseudonymises = (
            any(c.identity is not None and c.column.sensitivity == Sensitivity.IDENTITY for c in self.export_columns)
            and options.get("identity", IdentityMode.PSEUDONYMISE) == IdentityMode.PSEUDONYMISE
        )
        zone = zoneinfo.ZoneInfo(timezone)
        read = {f for c in self.export_columns for f in c.fields}
        # Party values (``party:reporter:email``…) follow the case's own fields in a block.
        self.party_fields = sorted(f for f in read if ":" in f)
        # id and created_at lead every case tuple: the keyset reads them back.
        case_fields = ["id", "created_at"]
        case_fields += sorted(read - set(case_fields) - set(self.party_fields))
        self.case_fields = case_fields
        inv_fields = {f for c in self.export_columns for f in c.investigation_fields}
        self.needs_investigations = dataset == "investigations" or bool(inv_fields)
        self.inv_fields = ["case_id", *sorted(inv_fields - {"case_id"})]
        # A JSON field is read as the values at the paths its columns read.
        case_paths = _paths(c.json_path for c in self.export_columns if c.json_path and c.json_path[0] in c.fields)
        inv_paths = _paths(
            c.json_path for c in self.export_columns if c.json_path and c.json_path[0] in c.investigation_fields
        )
        self._inv_convert = converters(Investigation, self.inv_fields, inv_paths)
        # Datetimes shown as text are made from the stored values: read as they are.
        stored = {
            i
            for i, field in enumerate(self.inv_fields)
            if datetimes_as_text and _field(Investigation, field).get_internal_type() == "DateTimeField"
        }
        inv_convert_later = {i: convert for i, convert in self._inv_convert if i in stored}
        self._inv_convert = [(i, convert) for i, convert in self._inv_convert if i not in stored]
        self._invs: OfCases | None = None  # compiled when first read
        self._party_reads = [_party_read(f) for f in self.party_fields]
        self._party_at: dict[str, int] = {}  # where each value read sits in a party's row
        self._pseudonym_makers: dict[str, Callable[[Any], str | None]] = {}
        self._parties: OfCases | None = None
        self._inv_select = selected(Investigation, self.inv_fields, inv_paths)
        self._case_select = selected(Case, self.case_fields, case_paths)
        self.layout = Layout(
            case={f: i for i, f in enumerate([*self.case_fields, *self.party_fields])},
            investigation={f: i for i, f in enumerate(self.inv_fields)},
            zone=zone,
            now=now.astimezone(zone),
            pseudonym_key=pseudonym_key,
            # Case values are read raw and converted column by column, when a column reads them.
            case_convert=dict(converters(Case, self.case_fields, case_paths)),
            case_paths=case_paths,
            investigation_paths=inv_paths,
            local_text=LocalIsoText(zone) if datetimes_as_text else None,
            investigation_convert=inv_convert_later,
        )
        self.extractors = [c.compile(self.layout) for c in self.export_columns]

    # --- reading --------------------------------------------------------------------------

    def _case_chunks(self, cases: QuerySet[Case]) -> Iterator[list[Sequence[Any]]]:
        """The cases a chunk at a time, each chunk read after the last one's key
        ``(created_at, id)``, its query compiled once and the key bound as it was read.

        The key's bound leads the ``WHERE``: SQLite ranges an index over the first lower
        bound of a column it meets, so with the export's own first (a date filter, a part's
        start) every chunk read the index from there, a chunk 400,000 rows in 72 ms against
        15 — an export quadratic in its rows. PostgreSQL takes the tighter bound whatever
        the order."""
        ordered = cases.order_by("created_at", "id")
        at, last = object(), object()
        created, after_id = RawSQL("%s", (at,)), RawSQL("%s", (last,))
        keyset = Case.objects.filter(created_at__gte=created).filter(
            Q(created_at__gt=created) | Q(created_at=created, id__gt=after_id)
        )
        sql, compiled = (keyset & ordered).values_list(*self._case_select)[:CHUNK_SIZE].query.sql_with_params()
        params = list(compiled)
        at_slots = [i for i, param in enumerate(params) if param is at]
        last_slot = _index(params, last)
        chunk = fetch(ordered.values_list(*self._case_select)[:CHUNK_SIZE], ())
        while chunk:
            # The key as the database gave it (SQLite: the stored text, compared as stored).
            for i in at_slots:
                params[i] = chunk[-1][1]
            params[last_slot] = chunk[-1][0]
            # The next chunk's query runs only when this one was written: no statement stays open.
            yield chunk
            chunk = fetch_sql(sql, params, ()) if len(chunk) == CHUNK_SIZE else []

    def _party_columns(self, row_cases: Sequence[Sequence[Any]]) -> list[list[Any]]:
        """The party values of each row's case, a column per party field (one query per
        chunk): the first reporter's field, or the list of every non-blank field in a role;
        or their pseudonyms (``psn:``…), each the party's stored one where its stamp is
        current (``exports.party_pseudonyms``), else made here from the value, which only
        such a party's row carries (a value read is a string made)."""
        if not self.party_fields:
            return []
        if self._parties is None:
            query, self._party_at = self._party_query()
            self._parties = OfCases(query)
        people: dict[int, dict[str, list[Sequence[Any]]]] = {}
        for party in self._parties.fetch(list(dict.fromkeys(case[0] for case in row_cases))):
            people.setdefault(party[0], {}).setdefault(party[1], []).append(party)
        nobody: dict[str, list[Sequence[Any]]] = {}
        owns = [people.get(case[0], nobody) for case in row_cases]
        at = self._party_at
        columns: list[list[Any]] = []
        for kind, role, field, pseudonyms in self._party_reads:
            if pseudonyms:
                made, stale = at[f"made_{field}"], at[f"stale_{field}"]
                columns.append(self._pseudonyms(owns, role, field, made, stale, many=kind == "parties"))
                continue
            i = at[field]
            if kind == "parties":
                columns.append([[p[i] for p in own.get(role, ()) if p[i].strip()] for own in owns])
            else:
                columns.append([own[role][0][i] if role in own else None for own in owns])
        return columns

    def _party_query(self) -> tuple[QuerySet[Party], dict[str, int]]:
        """The parties' ``case_id``, ``role`` and what the columns read — a field's value, or
        its pseudonym made ahead (``made_``: NULL when stale or blank) and the value of a
        party whose pseudonyms are stale (``stale_``: NULL when current) — and where each
        sits in a party's row."""
        names: list[str] = []
        made_ahead: dict[str, SqlCase] = {}
        for field, pseudonyms in sorted({(field, pseudonyms) for _, _, field, pseudonyms in self._party_reads}):
            if not pseudonyms:
                names.append(field)
                continue
            assert self.pseudonym_key is not None  # the pseudonymised columns compiled: there is one
            current = Q(pseudonym_stamp=pseudonym_stamp(self.pseudonym_key))
            made_ahead[f"made_{field}"] = SqlCase(When(current, then=F(stored_field(field))), output_field=TextField())
            made_ahead[f"stale_{field}"] = SqlCase(
                When(current, then=Value(None)), default=F(field), output_field=TextField()
            )
            names += [f"made_{field}", f"stale_{field}"]
        query = Party.objects.order_by("case_id", "id").annotate(**made_ahead).values_list("case_id", "role", *names)
        return query, {name: i for i, name in enumerate(names, 2)}

    def _pseudonyms(
        self,
        owns: Sequence[Mapping[str, list[Sequence[Any]]]],
        role: str,
        field: str,
        made: int,
        stale: int,
        *,
        many: bool,
    ) -> list[Any]:
        """The pseudonyms of a role's ``field``: the list of every non-blank one (``many``),
        or the first party's (None when blank). A party's stored pseudonym of a blank value
        is NULL, as ``organizations.pseudonyms`` makes none of it."""
        make = self._pseudonym_maker(role, field)
        if many:
            return [
                [v for p in own.get(role, ()) if (v := p[made] if p[stale] is None else make(p[stale]))] for own in owns
            ]
        firsts = [own[role][0] if role in own else None for own in owns]
        return [None if p is None else p[made] if p[stale] is None else make(p[stale]) for p in firsts]

    def _pseudonym_maker(self, role: str, field: str) -> Callable[[Any], str | None]:
        """The pseudonyms of parties whose stored ones are stale (rarely more than a few),
        made under the column their role puts the field in; one maker per column an export."""
        column = PARTY_PSEUDONYM_COLUMNS[field][role]
        if (make := self._pseudonym_makers.get(column)) is None:
            assert self.pseudonym_key is not None
            make = self._pseudonym_makers[column] = pseudonymiser(key=self.pseudonym_key, column=column, remember=1024)
        return make

    def _investigations(self, case_ids: list[int]) -> dict[int, list[Sequence[Any]]]:
        by_case: dict[int, list[Sequence[Any]]] = {}
        if not self.needs_investigations:
            return by_case
        if self._invs is None:
            self._invs = OfCases(Investigation.objects.order_by("case_id", "number").values_list(*self._inv_select))
        for inv in self._invs.fetch(case_ids, self._inv_convert):
            by_case.setdefault(inv[0], []).append(inv)
        return by_case

    # --- rows -----------------------------------------------------------------------------

    def rows(self, cases: QuerySet[Case]) -> Iterator[Sequence[Any]]:
        """File rows, one per case (``cases``) or per investigation (``investigations``)."""
        return rows_of(self.blocks(cases))

    def blocks(self, cases: QuerySet[Case]) -> Iterator[list[Sequence[Any]]]:
        """The file rows a chunk at a time, column by column (``exports.writers.base.ColumnBlock``):
        each compiled column makes its values for the whole chunk, and the column-wise
        writers take them so, without rows made and taken apart between them."""
        extractors, layout = self.extractors, self.layout
        none: list[Sequence[Any]] = []
        per_investigation = self.dataset == "investigations"
        for chunk in self._case_chunks(cases):
            invs = self._investigations([case[0] for case in chunk])
            if per_investigation:
                pairs = [(case, inv) for case in chunk for inv in invs.get(case[0], none)]
                if not pairs:
                    continue
                row_cases = [case for case, _ in pairs]
                owns = [invs[case[0]] for case in row_cases]
                row_invs: list[Sequence[Any] | None] = [inv for _, inv in pairs]
            else:
                row_cases = chunk
                owns = [invs.get(case[0], none) for case in chunk]
                row_invs = [own[-1] if own else None for own in owns]
            block = Block(layout, row_cases, owns, row_invs, self._party_columns(row_cases))
            yield [extract(block) for extract in extractors]

    def count(self, cases: QuerySet[Case]) -> int:
        """Rows the file will have (for progress)."""
        if self.dataset == "investigations":
            return Investigation.objects.filter(case__in=cases.values("id")).count()
        return cases.count()


__all__ = ["RowPlan"]
