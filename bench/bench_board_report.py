"""Benchmark the PDF board report: time to aggregate, time to render, peak memory.

    DATABASE_URL=sqlite:////tmp/bench_br.sqlite3 .venv/bin/python manage.py migrate
    DATABASE_URL=sqlite:////tmp/bench_br.sqlite3 .venv/bin/python bench/bench_board_report.py --cases 100000

Seeds ``--org`` with ``seed_demo`` in a child process when it has no cases (so this
process's peak RSS is the report's own), then builds the report for the whole organization
and for one period, printing one line per step.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def _rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000, help="cases to seed when the org is new")
    parser.add_argument("--org", default="bench-board-report", help="organization slug (reused when it has cases)")
    parser.add_argument("--anchor", default="2026-06-30", help="seed anchor date")
    parser.add_argument("--period-start", default="2025-07-01", help="period start for the second run")
    parser.add_argument("--period-end", default="2026-06-30", help="period end for the second run")
    parser.add_argument("--out", help="write the PDF of the period run here")
    args = parser.parse_args()

    import logging

    import django

    django.setup()
    logging.getLogger("weasyprint").setLevel(logging.WARNING)  # its INFO lines are per layout step
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from cases.models import Case
    from exports.board_report import board_report_data, render_board_report
    from organizations.models import Organization

    org = Organization.objects.filter(slug=args.org).first()
    if org is None or not Case.objects.filter(organization=org).exists():
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "seed_demo",
                "--org",
                args.org,
                "--cases",
                str(args.cases),
                "--anchor",
                args.anchor,
                "--no-users",
            ],
            check=True,
            cwd=ROOT,
        )
        print(f"seed        {time.perf_counter() - started:8.2f} s (child process)")
        org = Organization.objects.get(slug=args.org)
        if connection.vendor == "postgresql":
            # A bulk load leaves the planner without statistics until autovacuum runs;
            # a live database has them, so measure with them.
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE cases_case")
                cursor.execute("ANALYZE cases_investigation")
    count = Case.objects.filter(organization=org).count()
    print(f"database    {connection.vendor}, {count:,} cases in {org.slug!r}")
    print(f"rss before  {_rss_mib():8.1f} MiB")

    start = dt.date.fromisoformat(args.period_start)
    end = dt.date.fromisoformat(args.period_end)
    zone = org.tzinfo
    runs = [
        ("all time", None, None, Case.objects.filter(organization=org)),
        (
            f"{start}..{end}",
            start,
            end,
            Case.objects.filter(
                organization=org,
                created_at__gte=dt.datetime.combine(start, dt.time(0), tzinfo=zone),
                created_at__lt=dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0), tzinfo=zone),
            ),
        ),
    ]
    for label, period_start, period_end, cases in runs:
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            data = board_report_data(organization=org, cases=cases, period_start=period_start, period_end=period_end)
        data_s = time.perf_counter() - started
        started = time.perf_counter()
        buffer = io.BytesIO()
        pages = render_board_report(organization=org, data=data, stream=buffer, generated_at=timezone.now())
        render_s = time.perf_counter() - started
        print(
            f"{label:<24} cases {data.total_cases:>9,}  data {data_s:6.2f} s ({len(queries)} queries)  "
            f"render {render_s:5.2f} s  {pages} pages  {len(buffer.getvalue()) / 1024:6.0f} KiB  "
            f"peak rss {_rss_mib():7.1f} MiB"
        )
        if args.out and period_start is not None:
            Path(args.out).write_bytes(buffer.getvalue())
            print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
