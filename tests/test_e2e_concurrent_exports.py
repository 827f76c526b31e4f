"""Concurrency on one database: a real 2-worker qcluster runs four large exports in four
formats and a scheduled report at once, while the every-minute tick runs and a CLI export
writes beside them. On the embedded SQLite default this used to fail within seconds with
``database is locked``; it must pass the same on SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from exports.models import ExportJob
from exports.services import exports_storage
from exports.tasks import maintenance
from organizations.models import Organization, Role
from organizations.tests.factories import member
from scheduling.models import ScheduleRun
from scheduling.services import schedule_run_now
from scheduling.tasks import tick
from scheduling.tests.factories import make_schedule
from tests.cluster import ROOT, database_url, qcluster

CASES = 50_000
FORMATS = ["csv", "xlsx", "jsonl", "parquet"]


def _rows_in(job: ExportJob) -> int:
    """Data rows in the stored file, counted by the format's own reader."""
    with exports_storage().open(job.storage_key, "rb") as handle:
        if job.format == "csv":
            return sum(1 for _ in handle) - 1  # header line; seeded text has no newlines
        if job.format == "jsonl":
            return sum(1 for _ in handle)
        if job.format == "parquet":
            return pq.ParquetFile(handle).metadata.num_rows
        book = openpyxl.load_workbook(handle, read_only=True)
        sheets = [book[name] for name in book.sheetnames if name != "About"]
        return sum(sum(1 for _ in sheet.iter_rows(values_only=True)) - 1 for sheet in sheets)


class _Ticker(threading.Thread):
    """The cluster's two periodic tasks, run back to back instead of once a minute."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.ticks = 0
        self.errors: list[str] = []

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    maintenance()
                    tick()
                    self.ticks += 1
                except Exception as exc:  # recorded and asserted on, never swallowed
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                self.stop.wait(0.5)
        finally:
            connection.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_four_exports_a_report_the_tick_and_a_cli_export_all_complete_at_once(settings, tmp_path):
    settings.TASKS_SYNC = False  # tasks go to the real cluster
    call_command("seed_demo", "--org", "big", "--cases", str(CASES), "--no-users", "--anchor", "2026-06-30")
    org = Organization.objects.get(slug="big")
    officer = member(org, Role.OFFICER, username="officer")
    api = APIClient()
    api.force_authenticate(officer)
    schedule = make_schedule(
        org, officer, format="csv", filters={}, delivery_method="storage", storage_path="reports", recipients=[]
    )

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings", DATABASE_URL=database_url(), MEDIA_ROOT=str(settings.MEDIA_ROOT)
    )
    cli_out = tmp_path / "cli.csv"
    ticker = _Ticker()
    with qcluster(Q_WORKERS="2"):
        ids = []
        for fmt in FORMATS:
            response = api.post("/api/v1/orgs/big/exports/", {"dataset": "cases", "format": fmt}, format="json")
            assert response.status_code == 202, response.content
            ids.append(response.json()["id"])
        run = schedule_run_now(schedule=schedule, actor=officer)
        ticker.start()
        cli = subprocess.run(
            [sys.executable, "manage.py", "export", "--org", "big", "--format", "csv", "--output", str(cli_out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        deadline = time.monotonic() + 420
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            statuses = {str(j.pk): j.status for j in ExportJob.objects.filter(pk__in=ids)}
            run_status = ScheduleRun.objects.get(pk=run.pk).status
            if all(s in ("completed", "failed", "cancelled") for s in statuses.values()) and run_status not in (
                "pending",
                "running",
            ):
                break
            for job_id in ids:  # a client polling the API sees the same story
                body = api.get(f"/api/v1/orgs/big/exports/{job_id}/").json()
                assert body["status"] != "failed" or body["error"], body
            time.sleep(1)
        ticker.stop.set()
        ticker.join(30)
    log = (Path(django_settings.MEDIA_ROOT).parent / "qcluster.log").read_text(errors="replace")

    assert cli.returncode == 0, cli.stderr[-3000:]
    assert f"rows: {CASES}" in cli.stdout
    assert sum(1 for _ in cli_out.open("rb")) - 1 == CASES
    jobs = {j.format: j for j in ExportJob.objects.filter(pk__in=ids)}
    assert {fmt: job.status for fmt, job in jobs.items()} == dict.fromkeys(FORMATS, "completed"), (
        {fmt: (job.error, job.rows_done, job.attempts) for fmt, job in jobs.items()},
        log[-5000:],
    )
    for fmt, job in jobs.items():
        assert job.row_count == CASES and job.attempts == 1, (fmt, job.row_count, job.attempts)
        assert _rows_in(job) == CASES, fmt
    run.refresh_from_db()
    assert run.status == "success", run.error
    assert run.row_count == CASES and run.deliveries.get().status == "sent"
    assert ticker.ticks > 0 and ticker.errors == []
    assert "database is locked" not in log
    assert "Traceback" not in log, log[-3000:]
