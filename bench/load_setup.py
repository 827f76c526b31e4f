"""The data of ``bench/load.py``: its database, three organizations seeded by ``seed_demo``,
a member with an API token in each, and the schedules due in the coming minute — all made
through Dossier's own commands and services."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.load_procs import ROOT, procfile_command

FORMATS = ("csv", "jsonl", "parquet", "xlsx")


@dataclass(frozen=True)
class Org:
    """One organization of the test: its slug, size, zone and share of the work."""

    slug: str
    cases: int
    timezone: str


def organizations(cases: int) -> list[Org]:
    """One large organization and two smaller ones (a twentieth and a hundredth of it)."""
    return [
        Org("load-large", cases, "America/New_York"),
        Org("load-medium", max(1_000, cases // 20), "Europe/London"),
        Org("load-small", max(200, cases // 100), "Asia/Tokyo"),
    ]


def database_ensure(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the server, created when missing."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url.rsplit('/', 1)[0]}/{name}"


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def release(env: dict[str, str]) -> None:
    """The Procfile's release command (migrations), as a deployment runs it."""
    command = procfile_command("release").split()
    if command[0] == "python":
        command[0] = sys.executable
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def seed(env: dict[str, str], orgs: list[Org]) -> dict[str, float]:
    """``seed_demo`` (bulk COPY path) for each organization that has no cases yet; returns the
    seconds each seeding took (empty when the database already held the data)."""
    from cases.models import Case

    took: dict[str, float] = {}
    for org in orgs:
        if Case.objects.filter(organization__slug=org.slug).exists():
            continue
        started = time.perf_counter()
        manage(env, "seed_demo", "--org", org.slug, "--cases", str(org.cases), "--no-users", "--timezone", org.timezone)
        took[org.slug] = time.perf_counter() - started
    return took


def members_and_tokens(orgs: list[Org]) -> dict[str, tuple[Any, str]]:
    """An officer per organization (created through the membership service) and its DRF token."""
    from rest_framework.authtoken.models import Token

    from organizations.models import Organization, Role
    from organizations.services import membership_add

    out: dict[str, tuple[Any, str]] = {}
    for org in orgs:
        organization = Organization.objects.get(slug=org.slug)
        membership, _ = membership_add(
            organization=organization,
            username=f"{org.slug}-officer",
            role=Role.OFFICER,
            email=f"officer@{org.slug}.example.com",
        )
        token, _ = Token.objects.get_or_create(user=membership.user)
        out[org.slug] = (membership.user, token.key)
    return out


def leftovers_clear(orgs: list[Org]) -> dict[str, int]:
    """Cancel exports a previous, interrupted run left unfinished and delete its schedules
    (through the services), so this run measures only its own work."""
    from exports.models import TERMINAL_STATUSES, ExportJob
    from exports.services import export_job_cancel
    from scheduling.models import ReportSchedule
    from scheduling.services import schedule_delete

    slugs = [o.slug for o in orgs]
    cancelled = 0
    for job in ExportJob.objects.filter(organization__slug__in=slugs).exclude(status__in=TERMINAL_STATUSES):
        try:
            export_job_cancel(job=job, actor="bench")
            cancelled += 1
        except Exception:  # finished meanwhile
            pass
    deleted = 0
    for schedule in ReportSchedule.objects.filter(organization__slug__in=slugs):
        schedule_delete(schedule=schedule, actor="bench")
        deleted += 1
    return {"cancelled": cancelled, "deleted": deleted}


def schedule_shares(total: int) -> dict[str, int]:
    """How many of the schedules each organization owns: the small one a few, the large most."""
    small = max(1, total // 20)
    medium = total // 4 if total >= 3 else 0
    return {"load-small": small, "load-medium": medium, "load-large": max(0, total - small - medium)}


def schedules_create(orgs: list[Org], owners: dict[str, tuple[Any, str]], total: int, tag: str) -> list[int]:
    """``total`` daily schedules (through ``schedule_create``) delivering the previous month's
    cases by email and to storage, with rules that fall hours away: the test sets when they are due."""
    from organizations.models import Organization
    from scheduling.services import schedule_create

    ids: list[int] = []
    number = 0
    for org in orgs:
        organization = Organization.objects.get(slug=org.slug)
        owner = owners[org.slug][0]
        local = dt.datetime.now(organization.tzinfo) + dt.timedelta(hours=12)
        for _ in range(schedule_shares(total)[org.slug]):
            number += 1
            schedule = schedule_create(
                organization=organization,
                owner=owner,
                data={
                    "name": f"Load {tag} #{number:04d}",
                    "dataset": "cases",
                    "format": FORMATS[number % len(FORMATS)],
                    "filters": {"period": "previous_month"},
                    "columns": {},
                    "schedule": {"kind": "daily", "time": f"{local:%H}:00"},
                    "timezone": org.timezone,
                    "delivery_method": "email_and_storage",
                    "recipients": [f"report-{number:04d}@{org.slug}.example.com"],
                    "storage_path": f"load/{tag}/s{number:04d}",
                },
            )
            ids.append(schedule.pk)
    return ids


def schedules_due(ids: list[int], slot: dt.datetime) -> None:
    """Make every schedule due at ``slot`` (the dispatcher coalesces to this slot: the rule
    has none between it and now)."""
    from scheduling.models import ReportSchedule

    ReportSchedule.objects.filter(pk__in=ids).update(next_run_at=slot)


def coming_minute(lead: float) -> dt.datetime:
    """The next whole minute at least ``lead`` seconds away (UTC)."""
    now = dt.datetime.now(dt.UTC)
    slot = (now + dt.timedelta(seconds=lead)).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return slot
