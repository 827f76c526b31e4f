from __future__ import annotations

import itertools

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import GENESIS_HASH, audit_record, event_hash
from organizations.tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def record_events(org, n=4):
    user = UserFactory(username="auditor")
    return [
        audit_record(
            organization_id=org.pk,
            action="export.created",
            actor=user,
            target_type="exports.exportjob",
            target_id=i,
            details={"n": i, "amount": "12.50"},
            ip_address="127.0.0.1",
        )
        for i in range(n)
    ]


def test_events_chain_by_hash_per_organization():
    a, b = OrganizationFactory(), OrganizationFactory()
    events = record_events(a)
    other = audit_record(organization_id=b.pk, action="tag.updated")
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert events[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    stored = AuditEvent.objects.get(pk=events[2].pk)
    assert stored.hash == event_hash(prev_hash=events[1].hash, event=stored)
    assert other.sequence == 1 and other.prev_hash == GENESIS_HASH
    assert other.actor_label == "system"
    assert stored.actor_label == "auditor"


def test_verify_passes_on_an_untouched_chain(capsys):
    org = OrganizationFactory(slug="clean")
    record_events(org)
    call_command("verify_audit", "--org", "clean")
    assert "clean: ok, 4 events" in capsys.readouterr().out


def test_verify_detects_an_edited_row(is_postgres):
    if is_postgres:
        pytest.skip("PostgreSQL refuses the edit itself (see the next test)")
    org = OrganizationFactory(slug="edited")
    events = record_events(org)
    AuditEvent.objects.filter(pk=events[1].pk).update(details={"n": 99})
    report = audit_chain_verify(organization_id=org.pk)
    assert report.problems == ["event #2 (export.created) was changed after it was written"]
    with pytest.raises(CommandError, match="broken in 1"):
        call_command("verify_audit", "--org", "edited")


@pytest.mark.parametrize("which", [1, 3])
def test_verify_detects_a_deleted_row(is_postgres, which):
    org = OrganizationFactory()
    events = record_events(org)
    if is_postgres:
        with connection.cursor() as cursor:  # only a superuser bypassing the trigger can do this
            cursor.execute("SET session_replication_role = replica")  # skips triggers
            AuditEvent.objects.filter(pk=events[which].pk).delete()
            cursor.execute("SET session_replication_role = origin")
    else:
        AuditEvent.objects.filter(pk=events[which].pk).delete()
    report = audit_chain_verify(organization_id=org.pk)
    assert not report.ok
    if which == 3:  # the last event: only the chain head can tell
        assert report.problems == ["the chain ends at #3 but #4 was the last event written"]
    else:
        assert f"event #{which + 1} is missing (next found is #{which + 2})" in report.problems


@pytest.mark.postgres
def test_postgres_refuses_update_and_delete_of_audit_events():
    org = OrganizationFactory()
    events = record_events(org, 2)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=events[0].pk).update(action="tampered")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=events[0].pk).delete()
    assert audit_chain_verify(organization_id=org.pk).ok


def test_event_written_inside_a_rolled_back_transaction_is_gone():
    org = OrganizationFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(organization_id=org.pk, action="export.created")
        raise RuntimeError
    assert not AuditEvent.objects.filter(organization=org).exists()
    assert audit_record(organization_id=org.pk, action="export.created").sequence == 1
