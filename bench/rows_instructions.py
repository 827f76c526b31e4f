"""The bench's default export (93 columns) of the first N cases written as CSV by one
process, with nothing else: run it under ``valgrind --tool=cachegrind`` for N and for a
smaller N, and the difference over the difference in rows is the Python path's
instructions a row — exact and repeatable whatever else the machine is doing.

    DATABASE_URL=sqlite:///$PWD/var/bench_100000.sqlite3 valgrind --tool=cachegrind \\
        --cache-sim=no --cachegrind-out-file=/dev/null .venv/bin/python bench/rows_instructions.py 6000

(the database seeded by ``bench/bench_exports.py``; prints the rows' count and the CSV's size).
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    import django

    django.setup()
    import bench_exports
    from django.utils import timezone

    from exports.rows import RowPlan, collecting_rarely
    from exports.writers.csv_writer import CsvWriter
    from organizations.models import Organization
    from tagging.selectors import tag_slots_for

    rows = int(sys.argv[1])
    org = Organization.objects.get(slug=bench_exports.ORG)
    plan = RowPlan(
        dataset="cases",
        options=bench_exports.OPTIONS,
        snapshot=[t.snapshot() for t in tag_slots_for(organization=org, active_only=True)],
        timezone=org.timezone,
        now=timezone.now(),
        pseudonym_key=bytes(org.pseudonym_key),
        datetimes_as_text=CsvWriter.datetimes_as_text,
    )
    cases = bench_exports.plan_cases()
    cut = cases.order_by("created_at", "id").values_list("created_at", flat=True)[rows]
    out = io.BytesIO()
    with collecting_rarely():
        CsvWriter().write_columns(
            columns=plan.columns, blocks=plan.blocks(cases.filter(created_at__lt=cut)), stream=out, about=[]
        )
    print(rows, out.tell())


if __name__ == "__main__":
    main()
