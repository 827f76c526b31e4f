"""``manage.py ops_status`` and the admin's status page: the same figures, read from the
real tables and the real task broker; staff see their own organizations' rows."""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import pytest
from django.core.management import call_command
from django.utils import timezone

from config.tasks import enqueue
from exports.models import ExportJob
from exports.tests.factories import ExportJobFactory
from ops.models import WorkerHeartbeat
from ops.selectors import ops_status_read
from ops.services import worker_heartbeat_record, worker_heartbeats_prune
from organizations.models import Role
from organizations.tests.factories import OrganizationFactory, UserFactory, member
from scheduling.models import ScheduleRun
from scheduling.tests.factories import make_schedule

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.UTC)


def _job(org, status, *, created_ago=None, completed_ago=None):
    job = ExportJobFactory(organization=org, status=status)
    fields = {}
    if created_ago is not None:
        fields["created_at"] = NOW - created_ago
    if completed_ago is not None:
        fields["completed_at"] = NOW - completed_ago
    if status == "processing":
        fields.update(lease_owner="w:1:x", lease_expires_at=NOW + dt.timedelta(minutes=2), attempts=1)
    ExportJob.objects.filter(pk=job.pk).update(**fields)
    return job


def _run(schedule, status, completed_ago):
    return ScheduleRun.objects.create(
        schedule=schedule,
        scheduled_for=NOW - completed_ago,
        trigger="manual",
        status=status,
        completed_at=NOW - completed_ago,
    )


@pytest.fixture
def seeded():
    """Two organizations with exports and runs in every state, and three workers."""
    acme = OrganizationFactory(slug="acme")
    beta = OrganizationFactory(slug="beta")
    quiet = OrganizationFactory(slug="quiet")
    _job(acme, "pending", created_ago=dt.timedelta(seconds=600))
    _job(acme, "pending", created_ago=dt.timedelta(seconds=90))
    _job(acme, "processing", created_ago=dt.timedelta(seconds=900))
    _job(acme, "failed", completed_ago=dt.timedelta(hours=1))
    _job(acme, "failed", completed_ago=dt.timedelta(hours=23, minutes=59))
    _job(acme, "completed", completed_ago=dt.timedelta(minutes=5))
    _job(beta, "processing", created_ago=dt.timedelta(seconds=30))
    _job(beta, "processing", created_ago=dt.timedelta(seconds=20))
    _job(beta, "pending", created_ago=dt.timedelta(seconds=45))
    _job(beta, "failed", completed_ago=dt.timedelta(hours=25))  # too long ago
    _job(quiet, "completed", completed_ago=dt.timedelta(minutes=1))
    _job(quiet, "cancelled", completed_ago=dt.timedelta(minutes=1))
    for org in (acme, beta):
        owner = member(org, Role.OFFICER)
        schedule = make_schedule(org, owner, delivery_method="storage", storage_path="r", recipients=[])
        _run(schedule, "failed", dt.timedelta(hours=2))
        _run(schedule, "success", dt.timedelta(hours=3))
        _run(schedule, "failed", dt.timedelta(hours=30))  # too long ago
    started = NOW - dt.timedelta(hours=1)
    worker_heartbeat_record(host="web-1", pid=101, started_at=started, now=NOW - dt.timedelta(seconds=5))
    worker_heartbeat_record(host="web-1", pid=102, started_at=started, now=NOW - dt.timedelta(seconds=59))
    worker_heartbeat_record(host="web-2", pid=101, started_at=started, now=NOW - dt.timedelta(seconds=61))  # gone
    return acme, beta


def _ops_status(monkeypatch) -> dict:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    out = io.StringIO()
    call_command("ops_status", stdout=out)
    return json.loads(out.getvalue())


def test_ops_status_prints_the_contract_figures(seeded, monkeypatch, settings, django_capture_on_commit_callbacks):
    settings.TASKS_SYNC = False  # tasks go to the broker and wait there: no cluster runs here
    before = _ops_status(monkeypatch)["queue_depth"]
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            enqueue("exports.tasks.maintenance")
    status = _ops_status(monkeypatch)
    assert status["queue_depth"] == before + 3  # the broker's own count (ORM table or Redis list)
    assert status["jobs"] == {
        "acme": {"pending": 2, "processing": 1},
        "beta": {"pending": 1, "processing": 2},
    }
    assert status["oldest_pending_seconds"] == 600
    assert status["failed_last_24h"] == {"exports": 2, "runs": 2}
    assert status["workers_seen_last_minute"] == 2
    assert status["export_max_concurrent_per_org"] == 2
    assert {"queue_depth", "jobs", "oldest_pending_seconds", "failed_last_24h", "workers_seen_last_minute"} <= set(
        status
    )


def test_ops_status_with_nothing_pending_says_null(monkeypatch):
    status = _ops_status(monkeypatch)
    assert status["jobs"] == {}
    assert status["oldest_pending_seconds"] is None
    assert status["failed_last_24h"] == {"exports": 0, "runs": 0}
    assert status["workers_seen_last_minute"] == 0


def test_heartbeats_are_one_row_per_worker_and_old_ones_are_forgotten():
    started = NOW - dt.timedelta(days=3)
    for seconds in (0, 20, 40):
        worker_heartbeat_record(host="h", pid=7, started_at=started, now=started + dt.timedelta(seconds=seconds))
    assert WorkerHeartbeat.objects.get().seen_at == started + dt.timedelta(seconds=40)
    worker_heartbeat_record(host="h", pid=8, started_at=NOW, now=NOW)
    assert worker_heartbeats_prune(before=NOW - dt.timedelta(days=1)) == 1
    assert list(WorkerHeartbeat.objects.values_list("pid", flat=True)) == [8]
    assert ops_status_read(now=NOW)["workers_seen_last_minute"] == 1


# --- the admin page -------------------------------------------------------------------------


def _rows(html: str) -> set[str]:
    return set(re.findall(r'data-org="([^"]+)"', html))


def _figure(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, element_id
    return match.group(1)


def test_a_staff_member_sees_only_their_own_organizations_rows(seeded, client, monkeypatch):
    acme, _ = seeded
    client.force_login(member(acme, Role.VIEWER, username="viewer"))
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    response = client.get("/admin/ops/status/")
    assert response.status_code == 200
    html = response.content.decode()
    assert _rows(html) == {"acme"}
    assert _figure(html, "failed-exports") == "2" and _figure(html, "failed-runs") == "1"
    assert _figure(html, "oldest-pending") == "600 s"
    assert _figure(html, "workers-seen") == "2"
    assert "in your organizations" in html


def test_a_superuser_sees_every_organization(seeded, client, monkeypatch):
    client.force_login(UserFactory(username="root", is_superuser=True))
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    html = client.get("/admin/ops/status/").content.decode()
    assert _rows(html) == {"acme", "beta"}
    assert _figure(html, "failed-exports") == "2" and _figure(html, "failed-runs") == "2"


def test_staff_without_organizations_see_no_rows(seeded, client):
    client.force_login(UserFactory(username="lonely"))
    response = client.get("/admin/ops/status/")
    assert response.status_code == 200 and _rows(response.content.decode()) == set()


@pytest.mark.parametrize("user", ["anonymous", "not staff"])
def test_anyone_else_is_sent_to_sign_in(seeded, client, user):
    if user == "not staff":
        client.force_login(UserFactory(username="customer", is_staff=False))
    response = client.get("/admin/ops/status/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/admin/ops/status/")
