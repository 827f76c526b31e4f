"""The people's pseudonyms made ahead, for exports.

An HMAC costs PostgreSQL two ``sha256()`` calls (≈ 1.4 µs in a part's aggregation, most of
it OpenSSL's set-up per call): a fifth of a pushed-down export's time with the default
columns; in the Python path (SQLite) the people's columns were a tenth of a row's time. A
party's pseudonyms are the same in every export until its values or the organization's key
change, so they are made once — on PostgreSQL in SQL (the very expressions an export would
run, ``exports.sql``), on SQLite in Python (``organizations.pseudonyms``) — and stored on
the party with a stamp. An export uses a stored pseudonym only where the party's stamp is
the organization's current one, and makes it itself anywhere else: a stale or missing one
costs time, never a wrong pseudonym.

The stamp is an HMAC of the identity columns' layout under the organization's key: a new
key (``pseudonym_key_rotate``) or a changed layout makes every stored pseudonym stale. A
change to a party's role or identifying fields clears its stamp in the database itself
(a trigger, ``cases`` migrations 0003 and 0004), whatever makes the change.

Made in one place, the every-minute sweep (``party_pseudonyms_sweep``, run by the
maintenance task): for parties whose stamp is blank (a new party, a changed one, rows from
before this) and for an organization whose current stamp was never made whole (a new key,
new identity columns); and all at once when demo data is seeded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Min

from cases.models import PARTY_PSEUDONYM_COLUMNS, Party
from exports.models import PartyPseudonymsMade
from exports.sql import SqlBuilder
from organizations.models import Organization
from organizations.pseudonyms import column_pseudonym, hmac_pads

# Part of every stamp: change it with the pseudonyms' algorithm (``organizations.pseudonyms``
# and its SQL), and every stored pseudonym is stale at once.
STAMP_VERSION = "party-pseudonyms/1"
STAMP_CHARS = 32
PADS_TABLE = "pg_temp.dossier_pseudonym_pads"  # a session's own: the HMAC's padded keys
PADS_SQL = (f"(SELECT inner_pad FROM {PADS_TABLE})", f"(SELECT outer_pad FROM {PADS_TABLE})")
REFRESH_BATCH = 20_000  # party ids a statement
SWEEP_PARTIES = 100_000  # a maintenance run's share (≈ 2 s)


def pseudonym_stamp(key: bytes) -> str:
    """The stamp of pseudonyms made with ``key`` for today's identity columns (no secret:
    an HMAC under the key, which it does not reveal)."""
    layout = json.dumps(PARTY_PSEUDONYM_COLUMNS, sort_keys=True)
    return hmac.new(key, f"{STAMP_VERSION}:{layout}".encode(), hashlib.sha256).hexdigest()[:STAMP_CHARS]


def stored_field(field: str) -> str:
    """The column holding the pseudonym made ahead of a party's ``field``."""
    return f"pseudonym_{field}"


def stored_pseudonym(
    builder: SqlBuilder, party: str, role: str, field: str, column: str, stamp: str, pads: tuple[str, str]
) -> str:
    """SQL for the pseudonym of ``party``'s ``field`` under ``column``: the stored one where
    the party's stamp is ``stamp``, else made here."""
    if PARTY_PSEUDONYM_COLUMNS.get(field, {}).get(role) != column:
        raise ValueError(f"No pseudonym of the {role}'s {field} is stored under {column}.")
    made = builder.pseudonym_of(f"NULLIF({builder.normalised(f'{party}.{field}')}, '')", pads, column)
    stored = f"{party}.{stored_field(field)}"
    return f"CASE WHEN {party}.pseudonym_stamp = {builder.param(stamp)} THEN {stored} ELSE {made} END"


def load_pads(cursor: Any, key: bytes) -> None:
    """The HMAC's padded keys of ``key`` into this session's pads table, as COPY data:
    never in a statement's text, which PostgreSQL may log (read through ``PADS_SQL``)."""
    cursor.execute(f"DROP TABLE IF EXISTS {PADS_TABLE}")
    cursor.execute(f"CREATE TEMPORARY TABLE {PADS_TABLE} (inner_pad bytea NOT NULL, outer_pad bytea NOT NULL)")
    with cursor.copy(f"COPY {PADS_TABLE} (inner_pad, outer_pad) FROM STDIN") as copy:
        copy.write_row(hmac_pads(key))


def party_pseudonyms_refresh(
    *, organization_id: int, party_ids: Sequence[int] | None = None, limit: int | None = None
) -> int:
    """Make and store the pseudonyms of the organization's parties whose stamp is not the
    current one (of ``party_ids`` only, when given); returns how many were made.

    On PostgreSQL in SQL, the key reaching the database as COPY data only; elsewhere in
    Python (``_refresh_here``). A whole organization goes ``REFRESH_BATCH`` party ids at a
    time, each batch its own statement (outside a caller's transaction, its own commit): no
    edit of a party waits for more than one batch's row locks. It stops after the batch that
    reaches ``limit``; a whole pass that went through records the stamp
    (``PartyPseudonymsMade``)."""
    key = bytes(Organization.objects.values_list("pseudonym_key", flat=True).get(pk=organization_id))
    if connection.vendor != "postgresql":
        return _refresh_here(organization_id, key, party_ids=party_ids, limit=limit)
    builder = SqlBuilder()
    stamp = pseudonym_stamp(key)
    sets = [f"pseudonym_stamp = {builder.param(stamp)}"]
    for field, by_role in sorted(PARTY_PSEUDONYM_COLUMNS.items()):
        normalised = f"NULLIF({builder.normalised(field)}, '')"
        whens = " ".join(
            f"WHEN {builder.param(role)} THEN {builder.pseudonym_of(normalised, PADS_SQL, column)}"
            for role, column in sorted(by_role.items())
        )
        sets.append(f"{stored_field(field)} = CASE role {whens} END")
    where = f"organization_id = {builder.param(organization_id)} AND pseudonym_stamp <> {builder.param(stamp)}"
    if party_ids is not None:
        where += f" AND id = ANY({builder.param(list(party_ids))})"
        batches: list[tuple[int, int] | None] = [None]
    else:
        where += " AND id >= %(lo)s AND id < %(hi)s"
        ids = Party.objects.filter(organization_id=organization_id).aggregate(lo=Min("id"), hi=Max("id"))
        if ids["lo"] is None:
            _made_whole(organization_id, stamp)
            return 0
        batches = [(lo, lo + REFRESH_BATCH) for lo in range(ids["lo"], ids["hi"] + 1, REFRESH_BATCH)]
    statement = f"UPDATE {Party._meta.db_table} SET {', '.join(sets)} WHERE {where}"
    made = 0
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        load_pads(cursor, key)
        try:
            for batch in batches:
                if limit is not None and made >= limit:
                    return made
                params: dict[str, Any] = dict(builder.params)
                if batch is not None:
                    params["lo"], params["hi"] = batch
                cursor.execute(statement, params)
                made += int(cursor.rowcount)
        finally:
            cursor.execute(f"DROP TABLE IF EXISTS {PADS_TABLE}")
    if party_ids is None:
        _made_whole(organization_id, stamp)
    return made


def _refresh_here(organization_id: int, key: bytes, *, party_ids: Sequence[int] | None, limit: int | None) -> int:
    """``party_pseudonyms_refresh`` made in Python (SQLite): ``REFRESH_BATCH`` stale parties
    read, their pseudonyms made, and written in one short transaction, each row only if it
    still holds the values read (a party changed in between keeps its cleared stamp and
    waits for the next run)."""
    stamp = pseudonym_stamp(key)
    fields = sorted(PARTY_PSEUDONYM_COLUMNS)
    made_by = {
        (field, role): column_pseudonym(key=key, column=column)
        for field, by_role in PARTY_PSEUDONYM_COLUMNS.items()
        for role, column in by_role.items()
    }
    stored = ", ".join(f"{stored_field(field)} = %s" for field in fields)
    unchanged = " AND ".join(f"{field} = %s" for field in ["role", *fields])
    statement = f"UPDATE {Party._meta.db_table} SET pseudonym_stamp = %s, {stored} WHERE id = %s AND {unchanged}"
    stale = Party.objects.filter(organization_id=organization_id).exclude(pseudonym_stamp=stamp).order_by("id")
    chunks: list[Sequence[int] | None] = (
        [None]
        if party_ids is None
        else [party_ids[i : i + REFRESH_BATCH] for i in range(0, len(party_ids), REFRESH_BATCH)]
    )
    made, after = 0, 0
    for ids in chunks:
        while True:
            if limit is not None and made >= limit:
                return made
            batch = stale.filter(id__gt=after) if ids is None else stale.filter(id__in=ids)
            parties = list(batch.values_list("id", "role", *fields)[:REFRESH_BATCH])
            if not parties:
                break
            rows = []
            for party_id, role, *values in parties:
                made_values = [
                    made_by[field, role](value) if (field, role) in made_by else None
                    for field, value in zip(fields, values, strict=True)
                ]
                rows.append([stamp, *made_values, party_id, role, *values])
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(statement, rows)
                made += max(cursor.rowcount, 0)
            after = parties[-1][0]
            if ids is not None:
                break
    if party_ids is None:
        _made_whole(organization_id, stamp)
    return made


def _made_whole(organization_id: int, stamp: str) -> None:
    PartyPseudonymsMade.objects.update_or_create(organization_id=organization_id, defaults={"stamp": stamp})


def party_pseudonyms_sweep() -> int:
    """Every minute (``maintenance``), at most ``SWEEP_PARTIES`` pseudonyms a run: first
    those of parties whose stamp is blank (a new party, one the trigger saw change, rows
    from before pseudonyms were stored; a partial index holds just those, so a run that
    finds none reads nothing); then those of organizations whose current stamp was never
    made whole (a new key, new identity columns), a whole pass recording it."""
    waiting = Party.objects.filter(pseudonym_stamp="").order_by().values_list("organization_id", "id")
    by_organization: dict[int, list[int]] = {}
    for organization_id, party_id in waiting[:SWEEP_PARTIES]:
        by_organization.setdefault(organization_id, []).append(party_id)
    made = sum(
        party_pseudonyms_refresh(organization_id=organization_id, party_ids=ids)
        for organization_id, ids in by_organization.items()
    )
    whole = dict(PartyPseudonymsMade.objects.values_list("organization_id", "stamp"))
    for organization_id, key in Organization.objects.order_by("pk").values_list("pk", "pseudonym_key"):
        if made >= SWEEP_PARTIES:
            break
        if whole.get(organization_id) != pseudonym_stamp(bytes(key)):
            made += party_pseudonyms_refresh(organization_id=organization_id, limit=SWEEP_PARTIES - made)
    return made
