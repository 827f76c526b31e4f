"""The people's pseudonyms made ahead (in SQL on PostgreSQL, in Python on SQLite): the same
as the ones made when needed, used only while they are current, made again when a person or
the key changes."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection

from cases.models import PARTY_PSEUDONYM_COLUMNS, Party
from cases.tests.factories import CaseFactory, PartyFactory
from exports.party_pseudonyms import party_pseudonyms_refresh, pseudonym_stamp, stored_field
from exports.services import export_job_create, export_job_run, exports_storage
from exports.tasks import maintenance
from organizations.models import Organization
from organizations.pseudonyms import pseudonym
from organizations.services import pseudonym_key_rotate
from organizations.tests.factories import OrganizationFactory

pytestmark = [pytest.mark.django_db(transaction=True)]

# Spellings that meet (trimmed, lower-cased by Unicode's rules), text ICU lower-cases
# differently from ASCII rules, blanks, and a formula.
NAMES = ["  Zoë Brontë ", "ZOË BRONTË", "İlkay Şahin", "STRASSE Groß", "", "   ", "=1+1", "Nguyễn Văn Ánh"]


def _org_with_people(slug: str = "acme") -> Organization:
    org: Organization = OrganizationFactory(slug=slug)  # type: ignore[assignment]
    for i, name in enumerate(NAMES):
        case = CaseFactory(organization=org)
        for role in ("reporter", "subject", "witness"):
            PartyFactory(
                organization=org,
                case=case,
                role=role,
                full_name=name,
                email=f"{name.strip().lower()[:4]}{i}@example.com" if name.strip() else "",
                phone=" +44 20 7946 0000" if i % 2 else "",
                employee_id=f"E{i}" if i % 3 else "",
            )
    maintenance()  # the minute sweep: new parties (a blank stamp) given their pseudonyms
    return org


def _expected(party: Party, key: bytes) -> dict[str, str | None]:
    """What ``organizations.pseudonyms`` makes of each of the party's fields."""
    return {
        field: (
            pseudonym(key=key, column=by_role[party.role], value=getattr(party, field))
            if party.role in by_role
            else None
        )
        for field, by_role in PARTY_PSEUDONYM_COLUMNS.items()
    }


def _stored(party: Party) -> dict[str, str | None]:
    return {field: getattr(party, stored_field(field)) for field in PARTY_PSEUDONYM_COLUMNS}


def _export_rows(org: Organization, settings, *, pushdown: bool) -> list[dict[str, str]]:
    settings.EXPORT_SQL_PUSHDOWN = pushdown
    job = export_job_create(organization=org, dataset="cases", format="csv", columns={}, enqueue_run=False)
    export_job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == "completed", job.error
    with exports_storage().open(job.storage_key, "rb") as handle:
        return list(csv.DictReader(io.StringIO(handle.read().decode("utf-8-sig"), newline="")))


def _export(org: Organization, settings, *, pushdown: bool) -> bytes:
    settings.EXPORT_SQL_PUSHDOWN = pushdown
    job = export_job_create(organization=org, dataset="cases", format="jsonl", columns={}, enqueue_run=False)
    export_job_run(job_id=str(job.pk))
    job.refresh_from_db()
    with exports_storage().open(job.storage_key, "rb") as handle:
        return handle.read()


def test_the_minute_sweep_gives_new_and_changed_parties_the_pseudonyms_python_makes():
    org = _org_with_people()
    key = bytes(org.pseudonym_key)
    changed = Party.objects.filter(organization=org, role="witness").exclude(full_name="").first()
    changed.full_name = "Changed Name"
    changed.save()  # the trigger clears its stamp: it waits for the sweep again
    assert Party.objects.get(pk=changed.pk).pseudonym_stamp == ""
    assert maintenance()["party_pseudonyms"] == 1
    parties = list(Party.objects.filter(organization=org))
    assert len(parties) == 3 * len(NAMES)
    for party in parties:
        assert party.pseudonym_stamp == pseudonym_stamp(key)
        assert _stored(party) == _expected(party, key), (party.role, party.full_name)
    # The blank names have none; the spellings of one person meet; roles never share one.
    subjects = {p.full_name: p.pseudonym_full_name for p in parties if p.role == "subject"}
    assert subjects[""] is None and subjects["   "] is None
    assert subjects["  Zoë Brontë "] == subjects["ZOË BRONTË"] is not None
    reporters = {p.full_name: p.pseudonym_full_name for p in parties if p.role == "reporter"}
    assert reporters["ZOË BRONTË"] != subjects["ZOË BRONTË"]
    # Only a reporter's email is ever exported: a subject's is never stored.
    assert all(p.pseudonym_email is None for p in parties if p.role != "reporter")


def test_an_export_reads_a_current_stored_pseudonym_and_makes_a_stale_one_itself(settings):
    org = _org_with_people()
    key = bytes(org.pseudonym_key)
    first, second = Party.objects.filter(organization=org, role="reporter").exclude(full_name="").order_by("id")[:2]
    # A current stamp: the stored value is what the export shows (here a marker).
    Party.objects.filter(pk=first.pk).update(pseudonym_full_name="PSN-stored0000")
    first.refresh_from_db()
    assert first.pseudonym_stamp == pseudonym_stamp(key)
    # A person renamed by any means (a bulk update here, no signal): the trigger clears the
    # stamp, and the export makes the new name's pseudonym itself.
    Party.objects.filter(pk=second.pk).update(full_name="Renamed Person")
    second.refresh_from_db()
    assert second.pseudonym_stamp == ""
    assert second.pseudonym_full_name == pseudonym(key=key, column="reporter_name", value=NAMES[1])  # stale
    rows = {row["Case reference"]: row["Reporter name"] for row in _export_rows(org, settings, pushdown=True)}
    assert rows[first.case.reference] == "PSN-stored0000"
    assert rows[second.case.reference] == pseudonym(key=key, column="reporter_name", value="Renamed Person")


def test_files_are_the_same_with_pseudonyms_stored_stale_or_missing(settings):
    org = _org_with_people()
    expected = _export(org, settings, pushdown=False)
    assert b"PSN-" in expected
    assert _export(org, settings, pushdown=True) == expected  # all stored
    Party.objects.filter(organization=org, role="subject").update(pseudonym_stamp="")
    assert _export(org, settings, pushdown=True) == expected  # some stale
    Party.objects.filter(organization=org).update(pseudonym_stamp="", pseudonym_full_name=None)
    assert _export(org, settings, pushdown=True) == expected  # none


def test_a_new_key_makes_every_stored_pseudonym_stale_until_the_sweep_makes_them_again(settings, monkeypatch):
    from exports import party_pseudonyms
    from exports.models import PartyPseudonymsMade

    org = _org_with_people()
    other = _org_with_people("other")
    old_stamp = pseudonym_stamp(bytes(org.pseudonym_key))
    assert party_pseudonyms_refresh(organization_id=org.pk) == 0  # a whole pass: recorded
    assert PartyPseudonymsMade.objects.get(organization=org).stamp == old_stamp
    before = _export(org, settings, pushdown=False)
    pseudonym_key_rotate(organization=org)
    org.refresh_from_db()
    key = bytes(org.pseudonym_key)
    assert pseudonym_stamp(key) != old_stamp
    # Every stored pseudonym is stale: the export makes them all, the new key's.
    assert set(Party.objects.filter(organization=org).values_list("pseudonym_stamp", flat=True)) == {old_stamp}
    after = _export(org, settings, pushdown=True)
    assert after != before and after == _export(org, settings, pushdown=False)
    # The sweep makes them again, a share a minute, and records the whole pass.
    monkeypatch.setattr(party_pseudonyms, "SWEEP_PARTIES", 10)
    monkeypatch.setattr(party_pseudonyms, "REFRESH_BATCH", 5)
    assert [maintenance()["party_pseudonyms"] for _ in range(4)] == [10, 10, 4, 0]
    assert all(_stored(p) == _expected(p, key) for p in Party.objects.filter(organization=org))
    assert PartyPseudonymsMade.objects.get(organization=org).stamp == pseudonym_stamp(key)
    assert _export(org, settings, pushdown=True) == after
    # The other organization's people kept theirs.
    other_key = bytes(Organization.objects.get(pk=other.pk).pseudonym_key)
    assert {p.pseudonym_stamp for p in Party.objects.filter(organization=other)} == {pseudonym_stamp(other_key)}


def test_a_refresh_makes_only_stale_pseudonyms_of_its_organization_a_batch_at_a_time(monkeypatch):
    from exports import party_pseudonyms

    org = _org_with_people()
    other = _org_with_people("other")
    Party.objects.update(pseudonym_stamp="")
    monkeypatch.setattr(party_pseudonyms, "REFRESH_BATCH", 5)  # 24 parties: several statements
    assert party_pseudonyms_refresh(organization_id=org.pk) == 3 * len(NAMES)
    assert party_pseudonyms_refresh(organization_id=org.pk) == 0  # nothing stale is left
    assert set(Party.objects.filter(organization=other).values_list("pseudonym_stamp", flat=True)) == {""}
    key = bytes(org.pseudonym_key)
    assert all(_stored(p) == _expected(p, key) for p in Party.objects.filter(organization=org))
    if connection.vendor != "postgresql":
        return
    # The key reached the database as COPY data, never in a statement: nothing of it
    # remains in this connection's session either.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname = 'dossier_pseudonym_pads'")
        assert cursor.fetchone()[0] == 0


def test_the_minute_sweep_gives_waiting_parties_their_pseudonyms_a_share_at_a_time(monkeypatch):
    from exports import party_pseudonyms

    org = _org_with_people()
    other = _org_with_people("other")
    # Rows from before pseudonyms were stored, or inserted in bulk: a blank stamp.
    Party.objects.update(pseudonym_stamp="", pseudonym_full_name=None)
    monkeypatch.setattr(party_pseudonyms, "SWEEP_PARTIES", 30)
    assert maintenance()["party_pseudonyms"] == 30
    assert Party.objects.filter(pseudonym_stamp="").count() == 2 * 3 * len(NAMES) - 30
    assert maintenance()["party_pseudonyms"] == 2 * 3 * len(NAMES) - 30
    assert maintenance()["party_pseudonyms"] == 0
    for each in (org, other):
        key = bytes(Organization.objects.get(pk=each.pk).pseudonym_key)
        assert all(_stored(p) == _expected(p, key) for p in Party.objects.filter(organization=each))
    # The look-up reads the partial index of the waiting parties only.
    explain = "EXPLAIN" if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN"
    with connection.cursor() as cursor:
        cursor.execute(f"{explain} SELECT organization_id, id FROM cases_party WHERE pseudonym_stamp = '' LIMIT 30")
        plan = " ".join(str(row[-1]) for row in cursor.fetchall())
    assert "party_pseudonyms_stale_idx" in plan


def test_a_party_changed_while_its_pseudonyms_are_made_keeps_waiting_for_them(monkeypatch):
    """SQLite makes them in Python between reading the parties and writing them: a party
    renamed in between is written only with the pseudonyms of its new name, later."""
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL makes them in one UPDATE statement")
    from exports import party_pseudonyms

    org = _org_with_people()
    key = bytes(org.pseudonym_key)
    renamed = Party.objects.filter(organization=org, role="subject").exclude(full_name="").order_by("id").first()
    Party.objects.filter(organization=org).update(pseudonym_stamp="")
    made_by = party_pseudonyms.column_pseudonym

    def renaming(*, key: bytes, column: str):  # type: ignore[no-untyped-def]
        of = made_by(key=key, column=column)

        def each(value):  # type: ignore[no-untyped-def]
            # An edit committed after the parties were read (once: it matches the old name only).
            Party.objects.filter(pk=renamed.pk, full_name=renamed.full_name).update(full_name="Someone Else")
            return of(value)

        return each

    monkeypatch.setattr(party_pseudonyms, "column_pseudonym", renaming)
    assert party_pseudonyms_refresh(organization_id=org.pk) == 3 * len(NAMES) - 1
    renamed.refresh_from_db()
    assert renamed.pseudonym_stamp == ""  # not the old name's pseudonym under a current stamp
    monkeypatch.setattr(party_pseudonyms, "column_pseudonym", made_by)
    assert maintenance()["party_pseudonyms"] == 1
    renamed.refresh_from_db()
    assert _stored(renamed) == _expected(renamed, key)
    assert renamed.pseudonym_full_name == pseudonym(key=key, column="subject_names", value="Someone Else")
