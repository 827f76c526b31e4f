"""Export N seeded cases (3 investigation groups, 20 tags) in each format; print rows/s and
peak RSS beside the raw database baseline measured in the same run.

    DATABASE_URL=sqlite:////tmp/bench.sqlite3 .venv/bin/python bench/bench_exports.py --cases 1000000
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/bench_exports.py --cases 1000000

Each format runs in a fresh process (``--one FORMAT``) so its peak RSS is its own. The
baseline reads the same columns with no formatting: ``COPY (SELECT …) TO STDOUT`` on
PostgreSQL, a plain cursor loop on SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

ORG = "bench"
EXTRA_TAGS = [
    (8, "Grade band", "case", "custom_fields.hr.employee_grade", "text"),
    (9, "Manager notified", "case", "custom_fields.hr.manager_notified", "boolean"),
    (10, "Risk score (custom)", "case", "custom_fields.risk.score", "number"),
    (11, "Risk tier", "case", "custom_fields.risk.tier", "text"),
    (12, "Records affected", "case", "custom_fields.privacy.records_affected", "number"),
    (13, "Injury", "case", "custom_fields.safety.injury", "boolean"),
    (14, "Witnesses", "case", "custom_fields.people.witnesses", "number"),
    (15, "Site code", "case", "custom_fields.site_code", "text"),
    (16, "Hotline operator", "case", "custom_fields.intake.hotline_operator", "text"),
    (17, "Call minutes", "riu", "custom_fields.caller.call_minutes", "number"),
    (18, "Callback", "riu", "custom_fields.caller.callback_requested", "boolean"),
    (19, "Counsel", "investigation", "custom_fields.external_counsel", "text"),
    (20, "Inv. legal hold", "investigation", "custom_fields.legal_hold", "boolean"),
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup(cases: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from cases.models import Case
    from organizations.models import Organization
    from tagging.demo import tag_slots_seed
    from tagging.services import tag_slot_put

    call_command("migrate", verbosity=0)
    org = Organization.objects.filter(slug=ORG).first()
    if org is None or not Case.objects.filter(organization=org).exists():
        started = time.perf_counter()
        call_command("seed_demo", "--org", ORG, "--cases", str(cases), "--no-users", "--anchor", "2026-10-31")
        print(f"seeded {cases:,} cases in {time.perf_counter() - started:.0f}s", flush=True)
        org = Organization.objects.get(slug=ORG)
    tag_slots_seed(organization=org)
    for slot, label, entity, path, data_type in EXTRA_TAGS:
        tag_slot_put(
            organization=org,
            slot=slot,
            data={"label": label, "source_entity": entity, "field_path": path, "data_type": data_type},
        )


def run_one(fmt: str) -> dict[str, float]:
    import django

    django.setup()
    from exports.models import ExportJob
    from exports.services import export_job_create, export_job_run
    from organizations.models import Organization

    org = Organization.objects.get(slug=ORG)
    job = export_job_create(
        organization=org,
        dataset="cases",
        format=fmt,
        source="cli",
        enqueue_run=False,
        columns={"max_investigations": 3, "include_overflow": True},
    )
    started = time.perf_counter()
    export_job_run(job_id=str(job.pk))
    elapsed = time.perf_counter() - started
    job = ExportJob.objects.get(pk=job.pk)
    assert job.status == "completed", job.error
    from exports.services import exports_storage

    exports_storage().delete(job.storage_key)
    return {
        "rows": job.row_count or 0,
        "seconds": elapsed,
        "mb": (job.file_size_bytes or 0) / 1e6,
        "rss_mb": peak_rss_mb(),
        "columns": len(job.tag_snapshot),
    }


def baseline() -> dict[str, float]:
    """The same columns read with no formatting: COPY on PostgreSQL, a cursor loop on SQLite."""
    import django

    django.setup()
    from django.db import connection

    from cases.models import Case
    from exports.filters import cases_filtered
    from exports.rows import RowPlan
    from organizations.models import Organization
    from tagging.selectors import tag_slots_for

    org = Organization.objects.get(slug=ORG)
    snapshot = [t.snapshot() for t in tag_slots_for(organization=org, active_only=True)]
    from django.utils import timezone

    plan = RowPlan(
        dataset="cases", options={"max_investigations": 3}, snapshot=snapshot, timezone=org.timezone, now=timezone.now()
    )
    cases = cases_filtered(organization_id=org.pk, filters={}, timezone=org.timezone)
    sql, params = cases.order_by("created_at", "id").values(*plan.case_fields).query.sql_with_params()
    inv_sql = "SELECT * FROM cases_investigation WHERE organization_id = %s ORDER BY case_id, number"
    started = time.perf_counter()
    rows = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            raw = cursor.cursor
            for query, args in ((sql, params), (inv_sql, (org.pk,))):
                with raw.copy(f"COPY ({raw.mogrify(query, args)}) TO STDOUT") as copy:
                    for block in copy:
                        rows += bytes(block).count(b"\n")
        else:
            for query, args in ((sql, params), (inv_sql, (org.pk,))):
                cursor.execute(query, args)
                while batch := cursor.fetchmany(10_000):
                    rows += len(batch)
    assert rows >= Case.objects.filter(organization=org).count()
    return {"rows": rows, "seconds": time.perf_counter() - started, "mb": 0, "rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--formats", default="csv,xlsx,jsonl,parquet")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(baseline() if args.one == "baseline" else run_one(args.one)))
        return
    setup(args.cases)
    vendor = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    print(f"\n{vendor}, {args.cases:,} cases, 3 investigation groups + overflow, 20 tags")
    print(f"{'format':<10}{'rows':>12}{'seconds':>10}{'rows/s':>10}{'MB':>9}{'peak RSS MB':>13}")
    for fmt in ["baseline", *args.formats.split(",")]:
        out = subprocess.run([sys.executable, __file__, "--one", fmt], capture_output=True, text=True, check=False)
        if out.returncode:
            print(f"{fmt:<10} failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        label = "baseline" if fmt == "baseline" else fmt
        print(
            f"{label:<10}{r['rows']:>12,.0f}{r['seconds']:>10.1f}{r['rows'] / r['seconds']:>10,.0f}"
            f"{r['mb']:>9.1f}{r['rss_mb']:>13.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
