"""Production, end to end: the Procfile's processes on PostgreSQL and Redis.

The release step migrates, the ``web`` process (gunicorn, two processes) takes export
requests over HTTP with API tokens, and two ``worker`` processes (qclusters) share one
Redis queue with a cap of one processing export per organization. One organization asks
for four large exports, another for a small one. While the first large export is being
written, its whole cluster is killed with SIGKILL: nothing is handed back, the job's lease
runs out and the surviving cluster's every-minute maintenance puts it back in line; the
killed cluster is then started again. Every export ends ``completed`` once, with the right
file, the cap held throughout, and the small organization's export ran beside the large
one's instead of waiting until they had all started.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow.parquet as pq
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db.models.functions import Now
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent
from cases.models import Case
from config.periodic import install_periodic_tasks
from exports.models import ExportJob, ExportStatus
from organizations.models import Organization, Role
from organizations.tests.factories import member
from tests.cluster import ROOT, database_url
from tests.smtp import free_port

BIG_CASES = 150_000
SMALL_CASES = 500
# XLSX first: the slowest writer, so the export killed mid-way is surely still being written.
BIG_FORMATS = ["xlsx", "csv", "jsonl", "parquet"]
LEASE_SECONDS = 15
DEADLINE_SECONDS = 480  # from the test's start until every export has finished
SECRET = "e2e-" + "Qm7vT2xR8pL4wN9sK3dF6hJ1bZ5cY0gA" * 2  # web and workers sign tasks with it

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs REDIS_URL=redis://…"),
]


def procfile() -> dict[str, str]:
    """The Procfile's process types and their commands."""
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, colon, command = line.partition(":")
        if colon and name.strip() and not name.lstrip().startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


@dataclass
class Proc:
    """One Procfile process running in a session (process group) of its own."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, chars: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log.name}), last {chars} characters ---\n{text[-chars:]}"


def start(name: str, command: str, env: dict[str, str], log: Path) -> Proc:
    """Run a Procfile command as a platform would: split like a shell, from the repo root."""
    with log.open("wb") as out:
        popen = subprocess.Popen(
            shlex.split(command), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Proc(name, popen, log)


def exited(proc: Proc) -> bool:
    """Whether the process has exited, without reaping it: while it is unreaped, its process
    and group ids stay ours and cannot be handed to another program's processes."""
    if proc.popen.returncode is not None:
        return True
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def stop(proc: Proc, wait: float = 20) -> None:
    """SIGTERM to the process itself (gunicorn's and qcluster's own clean stop), then SIGKILL
    to whatever is left of its group after ``wait`` seconds.

    Not SIGTERM to the whole group: django-q2's sentinel dies of it at once, and then the
    qcluster process blocks for ever waking it (stop_event.set()) and idle workers wait for
    work that never comes, until SIGKILL.
    """
    if proc.popen.returncode is not None:
        return  # reaped already: its ids may belong to someone else by now
    if not exited(proc):
        os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while not exited(proc) and time.monotonic() < deadline:
            time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):  # children still exiting hold DB connections
        os.killpg(proc.pid, signal.SIGKILL)
    proc.popen.wait(timeout=10)


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def log_errors(text: str) -> list[str]:
    """A log's ERROR lines and unexplained tracebacks. Tasks that other users of the same
    Redis list left there are signed with another SECRET_KEY: django-q2 drops them unread
    with one ERROR line and a traceback each, which are not ours."""
    lines = text.splitlines()
    foreign = sum("Failed to push task to queue" in line for line in lines)
    errors = [line for line in lines if "ERROR" in line and "Failed to push task to queue" not in line]
    tracebacks = sum(line.startswith("Traceback") for line in lines)
    if tracebacks > foreign:
        errors.append(f"{tracebacks - foreign} traceback(s) besides those of foreign tasks")
    return errors


def http(base: str, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, bytes]:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(f"{base}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def data_rows(fmt: str, content: bytes) -> int:
    """Data rows in a downloaded export, counted by the format's own reader."""
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
        assert len({len(row) for row in rows}) == 1, "rows of different widths"
        return len(rows) - 1  # the header
    if fmt == "jsonl":
        records = [json.loads(line) for line in content.decode().splitlines()]
        assert all(isinstance(record, dict) for record in records)
        return len(records)
    if fmt == "parquet":
        return int(pq.read_table(io.BytesIO(content)).num_rows)
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    sheets = [book[name] for name in book.sheetnames if name != "About"]
    return sum(sum(1 for _ in sheet.iter_rows(values_only=True)) - 1 for sheet in sheets)


@dataclass
class Watch:
    """Polls the database until a condition holds, sampling the cap at every turn."""

    capped_org: Organization
    deadline: float
    procs: list[Proc] = field(default_factory=list)
    samples: int = 0
    most_processing: int = 0

    def tails(self) -> str:
        return "\n".join(proc.tail() for proc in self.procs)

    def sample(self) -> None:
        # Processing with a live lease is what the cap counts: a killed worker's job still
        # reads "processing" until its lease runs out, but nobody is writing it any more.
        processing = ExportJob.objects.filter(
            organization=self.capped_org, status=ExportStatus.PROCESSING, lease_expires_at__gte=Now()
        ).count()
        self.most_processing = max(self.most_processing, processing)
        self.samples += 1

    def until(self, predicate: Any, what: str) -> Any:
        while True:
            self.sample()
            value = predicate()
            if value:
                return value
            if time.monotonic() > self.deadline:
                jobs = [(j.format, j.status, j.rows_done, j.attempts) for j in ExportJob.objects.all()]
                raise AssertionError(f"timed out waiting for {what}; jobs: {jobs}\n{self.tails()}")
            time.sleep(0.25)


@pytest.mark.django_db(transaction=True)
def test_procfile_processes_run_every_export_once_through_a_killed_worker(settings, tmp_path):
    began = time.monotonic()
    # Anything this process queues goes to the same Redis queue as the web process's tasks
    # (the broker is Redis whenever REDIS_URL is set), not inline.
    settings.TASKS_SYNC = False
    call_command("seed_demo", "--org", "big", "--cases", str(BIG_CASES), "--no-users", "--anchor", "2026-06-30")
    call_command("seed_demo", "--org", "small", "--cases", str(SMALL_CASES), "--no-users", "--anchor", "2026-06-30")
    big, small = Organization.objects.get(slug="big"), Organization.objects.get(slug="small")
    tokens = {
        org.slug: Token.objects.create(user=member(org, Role.OFFICER, username=f"officer-{org.slug}")).key
        for org in (big, small)
    }
    install_periodic_tasks()  # the transactional test flushed the ones the migrations installed
    seeded = time.monotonic() - began

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    venv_bin = str(Path(sys.executable).parent)
    # One environment for every process, as a platform gives them: production settings,
    # served over plain HTTP on loopback (no TLS proxy in front here).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "DJANGO_SETTINGS", "SECURE_", "CSRF_", "EXPORT_", "Q_", "GUNICORN"))
        and k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SITE_URL", "PORT", "WEB_CONCURRENCY", "EXPORTS_STORAGE")
    }
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",  # `gunicorn`, `python`: the virtualenv's
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="False",
        SECRET_KEY=SECRET,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SITE_URL=base,
        SECURE_SSL_REDIRECT="False",
        SECURE_HSTS_SECONDS="0",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,  # the queue the web process fills and both clusters drain
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        PORT=str(port),
        WEB_CONCURRENCY="2",
        Q_WORKERS="2",
        EXPORT_MAX_CONCURRENT_PER_ORG="1",
        EXPORT_LEASE_SECONDS=str(LEASE_SECONDS),
    )
    commands = procfile()
    release = subprocess.run(
        shlex.split(commands["release"]), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert release.returncode == 0, release.stdout + release.stderr
    assert "No migrations to apply" in release.stdout

    logs = tmp_path / "logs"
    logs.mkdir()
    watch = Watch(capped_org=big, deadline=began + DEADLINE_SECONDS)
    procs = watch.procs
    try:
        web = start("web", commands["web"], env, logs / "web.log")
        procs.append(web)
        clusters = [start(f"worker {n}", commands["worker"], env, logs / f"worker-{n}.log") for n in (1, 2)]
        procs.extend(clusters)

        def healthy() -> bool:
            assert web.popen.poll() is None, f"gunicorn exited\n{web.tail()}"
            with contextlib.suppress(OSError):
                status, body = http(base, "GET", "/api/v1/health/")
                return status == 200 and json.loads(body)["status"] == "ok"
            return False

        watch.until(healthy, "gunicorn to answer /api/v1/health/")

        requested = time.monotonic()
        ids: dict[str, str] = {}
        for slug, fmt in [*(("big", fmt) for fmt in BIG_FORMATS), ("small", "csv")]:
            status, body = http(
                base, "POST", f"/api/v1/orgs/{slug}/exports/", tokens[slug], {"dataset": "cases", "format": fmt}
            )
            assert status == 202, (status, body[:500], watch.tails())
            ids[f"{slug}.{fmt}"] = json.loads(body)["id"]

        def jobs() -> list[ExportJob]:
            return list(ExportJob.objects.filter(pk__in=ids.values()))

        def writing_and_settled() -> ExportJob | None:
            """A big export being written, once no task is in flight: a task a cluster has
            taken from Redis but not yet run dies with it (Redis delivers at most once),
            and such a job would wait for the five-minute lost-task sweep instead."""
            current = jobs()
            in_flight = [j for j in current if j.status == ExportStatus.PENDING and j.enqueued_at is not None]
            writing = [
                j
                for j in current
                if j.organization_id == big.pk and j.status == ExportStatus.PROCESSING and j.rows_done > 0
            ]
            return writing[0] if writing and not in_flight else None

        victim_job = watch.until(writing_and_settled, "a big export to be written with no task in flight")
        killed_pid = victim_job.worker_pid
        victim = next((c for c in clusters if c.pid == _group_of(killed_pid)), None)
        assert victim is not None, (killed_pid, [c.pid for c in clusters])
        killed_jobs = {  # every export the victim's workers were writing (perhaps the small one too)
            str(j.pk)
            for j in jobs()
            if j.status == ExportStatus.PROCESSING and j.worker_pid and _group_of(j.worker_pid) == victim.pid
        }
        os.killpg(victim.pid, signal.SIGKILL)  # the whole cluster, as when its machine is lost
        victim.popen.wait(timeout=10)
        killed_at = time.monotonic()
        victim_job.refresh_from_db()
        assert victim_job.status == ExportStatus.PROCESSING, (victim_job.status, watch.tails())
        assert victim_job.rows_done < (victim_job.rows_total or 0)  # cut off mid-way

        watch.until(
            lambda: ExportJob.objects.filter(pk=victim_job.pk, attempts__gte=2).exists(),
            "the killed export to be taken again after its lease ran out",
        )
        recovered_after = time.monotonic() - killed_at
        procs.append(start(f"{victim.name} restarted", commands["worker"], env, logs / "worker-restarted.log"))

        watch.until(lambda: all(j.is_terminal for j in jobs()), "every export to finish")
        finished_after = time.monotonic() - requested

        final = {key: ExportJob.objects.get(pk=pk) for key, pk in ids.items()}
        downloads = {}
        for key, job in final.items():
            slug = key.split(".")[0]
            status, content = http(base, "GET", f"/api/v1/orgs/{slug}/exports/{job.pk}/download/", tokens[slug])
            downloads[key] = (status, content)
    finally:
        for proc in reversed(procs):
            stop(proc)

    runs_took = ", ".join(f"{key} {(j.completed_at - j.started_at).total_seconds():.1f} s" for key, j in final.items())
    timings = (
        f"seeded in {seeded:.0f} s; {runs_took}; the killed export was taken again {recovered_after:.0f} s after "
        f"the kill; all done {finished_after:.0f} s after the requests"
    )
    print(timings)  # shown with -s, and by pytest under the failure
    tails = watch.tails()
    cases = {org.slug: Case.objects.filter(organization=org).count() for org in (big, small)}
    assert cases == {"big": BIG_CASES, "small": SMALL_CASES}
    assert {key: job.status for key, job in final.items()} == dict.fromkeys(ids, ExportStatus.COMPLETED), (
        {key: (job.error, job.attempts) for key, job in final.items()},
        tails,
    )
    for key, job in final.items():
        slug, fmt = key.split(".")
        assert job.row_count == cases[slug], (key, job.row_count)
        expected_attempts = 2 if str(job.pk) in killed_jobs else 1
        assert job.attempts == expected_attempts, (key, job.attempts, tails)
        status, content = downloads[key]
        assert status == 200, (key, status, content[:300])
        assert hashlib.sha256(content).hexdigest() == job.sha256, key
        assert data_rows(fmt, content) == cases[slug], key
        events = list(AuditEvent.objects.filter(target_id=str(job.pk)).values_list("action", flat=True))
        assert events.count("export.created") == 1 and events.count("export.completed") == 1, (key, events)
        assert "export.failed" not in events and "export.released" not in events, (key, events)
    assert str(victim_job.pk) in killed_jobs
    rerun = next(job for job in final.values() if job.pk == victim_job.pk)
    assert rerun.worker_pid != killed_pid, (killed_pid, tails)  # another worker wrote it

    # One file per export: the killed attempt stored nothing.
    stored = sorted(p.relative_to(settings.MEDIA_ROOT) for p in (Path(settings.MEDIA_ROOT) / "exports").rglob("*.*"))
    assert stored == sorted(Path("exports", job.storage_key) for job in final.values())

    # The cap: never two of big's exports processing at once, sampled and after the fact
    # (each run's claim-to-publish window; the killed attempt's was cut short by the kill).
    assert watch.most_processing == 1 and watch.samples > 100, (watch.most_processing, watch.samples)
    runs = sorted((job.started_at, job.completed_at) for key, job in final.items() if key.startswith("big."))
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(runs)), runs
    # The cap is per organization: the small export ran beside big's one slot, not after it.
    assert final["small.csv"].started_at < max(started for started, _ in runs), (final["small.csv"].started_at, runs)

    # gunicorn ran as gunicorn.conf.py says (port and process count from the environment).
    web_log = web.log.read_text(errors="replace")
    assert f"Listening at: http://0.0.0.0:{port}" in web_log and web_log.count("Booting worker") == 2, web_log[-3000:]
    assert "Using worker: gthread" in web_log
    for proc in procs:
        assert log_errors(proc.log.read_text(errors="replace")) == [], proc.tail()

    call_command("verify_audit")  # web and workers wrote into one hash chain per organization
