"""Jobs of dead workers are picked up again or failed with a reason; never stuck."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from exports.models import ExportJob
from exports.services import exports_recover
from exports.tests.factories import ExportJobFactory, org_with_cases

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return org_with_cases()[0]


def test_job_with_expired_lease_is_run_again_to_completion(org, django_capture_on_commit_callbacks):
    past = timezone.now() - dt.timedelta(minutes=5)
    job = ExportJobFactory(
        organization=org,
        status="processing",
        lease_owner="dead-host:1:x",
        lease_expires_at=past,
        attempts=1,
        rows_done=3,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert exports_recover() == {"requeued": 1, "failed": 0}
    job.refresh_from_db()
    assert job.status == "completed" and job.attempts == 2 and job.row_count == 5


def test_job_with_live_lease_is_left_alone(org):
    job = ExportJobFactory(
        organization=org,
        status="processing",
        lease_owner="busy:1:x",
        lease_expires_at=timezone.now() + dt.timedelta(minutes=1),
        attempts=1,
    )
    assert exports_recover() == {"requeued": 0, "failed": 0}
    job.refresh_from_db()
    assert job.status == "processing" and job.lease_owner == "busy:1:x"


def test_job_out_of_attempts_fails_with_a_reason(org):
    job = ExportJobFactory(
        organization=org,
        status="processing",
        lease_owner="dead:1:x",
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1),
        attempts=3,
    )
    assert exports_recover() == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == "failed"
    assert "stopped renewing its claim 3 times" in job.error


def test_pending_job_whose_task_was_lost_is_queued_again(org, django_capture_on_commit_callbacks):
    job = ExportJobFactory(organization=org, enqueued_at=timezone.now() - dt.timedelta(minutes=10))
    fresh = ExportJobFactory(organization=org, enqueued_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        exports_recover()
    job.refresh_from_db()
    fresh.refresh_from_db()
    assert job.status == "completed" and fresh.status == "pending"


def test_periodic_tasks_are_installed_once_by_the_migrations_and_on_demand():
    from django_q.models import Schedule

    from config.periodic import PERIODIC_TASKS, install_periodic_tasks

    for _ in range(2):
        assert dict(Schedule.objects.values_list("name", "func")) == PERIODIC_TASKS
        assert set(Schedule.objects.values_list("minutes", flat=True)) == {1}
        install_periodic_tasks()


def test_export_command_writes_the_file_and_prints_its_checksum(org, tmp_path):
    import hashlib

    out = tmp_path / "out"
    from django.core.management import call_command

    call_command(
        "export",
        "--org",
        org.slug,
        "--format",
        "jsonl",
        "--output",
        str(out) + "/",
        stdout=(buffer := __import__("io").StringIO()),
    )
    path, rows, sha = buffer.getvalue().splitlines()
    assert rows == "rows: 5"
    assert sha == f"sha256: {hashlib.sha256(Path(path).read_bytes()).hexdigest()}"
    assert ExportJob.objects.get().source == "cli"


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "csv", "--columns", '{"max_investigations": 99}'],
        ["--format", "csv", "--filters", "{bad"],
        ["--format", "csv", "--filters", '{"period": "someday"}'],
    ],
)
def test_export_command_bad_input_is_one_line_and_non_zero(org, args):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError):
        call_command("export", "--org", org.slug, *args)
    assert not ExportJob.objects.exists()
