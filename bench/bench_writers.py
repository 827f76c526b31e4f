"""Write N synthetic 84-column rows with each export writer; print rows/s, output MB and peak RSS.

.venv/bin/python bench/bench_writers.py --rows 100000 --formats csv,xlsx,jsonl,parquet

Each format runs in a fresh subprocess so that peak RSS (``ru_maxrss``) is that format's
alone. The "rows only" line is the cost of producing the rows without a writer: the
writers' own cost is the difference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import zoneinfo
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exports.columns_base import Column, ColumnGroup, ColumnType  # noqa: E402

FORMATS = ("csv", "xlsx", "jsonl", "parquet")
ZONE = zoneinfo.ZoneInfo("Europe/Paris")
POOL = 1000  # distinct rows, cycled: the bench measures writing, not building rows


# key:type, in the order of the real flat file's core columns.
CORE = """
case_number:text status:choice severity:choice priority:choice title:text summary:text
category:choice subcategory:choice channel:choice business_unit:text department:text
location:text country:choice region:choice reporter_type:choice anonymous:boolean
retaliation_concern:boolean substantiated:boolean owner:text assignee:text riu_count:integer
investigation_count:integer days_open:integer age_days:integer financial_impact:decimal
recovered_amount:decimal opened_on:date due_on:date closed_on:date incident_date:date
created_at:datetime updated_at:datetime closed_at:datetime first_response_at:datetime
outcome:choice disciplinary_action:text root_cause:text policy:text legal_hold:boolean
external_id:text
"""
INVESTIGATION = """
status:choice investigator:text finding:choice opened_on:date closed_on:date days:integer
summary:text substantiated:boolean
"""
TAGS = "text number boolean list date " * 4
VOCABULARY = "retaliation harassment fraud bribery conflict interest théft données 東京 policy breach vendor"
WORDS = VOCABULARY.split()


def _pairs(spec: str) -> list[tuple[str, ColumnType]]:
    return [(key, ColumnType(kind)) for key, kind in (item.split(":") for item in spec.split())]


def make_columns() -> list[Column]:
    """84 columns shaped like the real flat file: 40 core, 3 investigation groups of 8, 20 tags."""
    columns = [Column(key, key.replace("_", " ").title(), kind, ColumnGroup.CORE, 18) for key, kind in _pairs(CORE)]
    for i in range(1, 4):
        columns += [
            Column(f"investigation_{i}_{key}", f"Investigation {i} — {key.title()}", kind, ColumnGroup.INVESTIGATION)
            for key, kind in _pairs(INVESTIGATION)
        ]
    columns += [
        Column(f"tag_{i}", f"Tag {i}", ColumnType(kind), ColumnGroup.TAG) for i, kind in enumerate(TAGS.split(), 1)
    ]
    assert len(columns) == 84, len(columns)
    return columns


def _value(rng: random.Random, column: Column) -> Any:
    if rng.random() < 0.08:
        return None
    kind = column.type
    if kind in (ColumnType.TEXT, ColumnType.LIST):
        n = 12 if column.key.endswith("summary") else 3
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, n)))
        return ("=" + text) if rng.random() < 0.01 else text
    if kind == ColumnType.CHOICE:
        return rng.choice(["open", "closed", "in_progress", "high", "low", "-"])
    if kind == ColumnType.INTEGER:
        return rng.randint(-5, 5000)
    if kind == ColumnType.DECIMAL:
        return Decimal(rng.randint(-(10**6), 10**9)).scaleb(-2)
    if kind == ColumnType.NUMBER:
        return rng.choice([rng.randint(0, 100), rng.random() * 100, Decimal("12.50"), "n/a"])
    if kind == ColumnType.DATE:
        return dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 2000))
    if kind == ColumnType.DATETIME:
        return dt.datetime(2020, 1, 1, tzinfo=ZONE) + dt.timedelta(seconds=rng.randint(0, 10**8))
    return rng.random() < 0.5


def make_rows(columns: list[Column], n: int) -> Iterator[list[Any]]:
    """``n`` rows, lazily: a pool of distinct rows (built now, outside the timing) cycled, with
    a unique case number, count and timestamp per row so sizes are not flattered by repeats."""
    rng = random.Random(7)
    pool = [[_value(rng, column) for column in columns] for _ in range(POOL)]
    created = next(i for i, column in enumerate(columns) if column.key == "created_at")
    days = next(i for i, column in enumerate(columns) if column.key == "days_open")
    start = dt.datetime(2020, 1, 1, tzinfo=ZONE)

    def rows() -> Iterator[list[Any]]:
        for i in range(n):
            row = pool[i % POOL].copy()
            row[0] = f"C-{i:07d}"
            row[days] = i % 4000
            row[created] = start + dt.timedelta(minutes=i)
            yield row

    return rows()


def run_child(fmt: str, rows: int) -> dict[str, Any]:
    """Write one file (or only produce the rows for fmt "rows") and measure it, in this process."""
    from exports.writers import get_writer

    columns = make_columns()
    about = [("Export", "benchmark"), ("Rows", str(rows))]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"bench.{fmt}"
        source = make_rows(columns, rows)
        start = time.perf_counter()
        if fmt == "rows":
            done = sum(1 for _ in source)
            size = 0
        else:
            with path.open("wb") as stream:
                done = get_writer(fmt).write(columns=columns, rows=source, stream=stream, about=about)
            size = path.stat().st_size
        seconds = time.perf_counter() - start
    # Linux reports ru_maxrss in KiB.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"format": fmt, "rows": done, "seconds": seconds, "bytes": size, "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.rows)))
        return
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        parser.error(f"unknown formats: {', '.join(sorted(unknown))}")
    print(f"{args.rows:,} rows × 84 columns, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(f"{'format':<10}{'rows/s':>12}{'seconds':>10}{'output MB':>12}{'peak RSS MB':>14}")
    for fmt in ["rows", *formats]:
        out = subprocess.run(
            [sys.executable, __file__, "--child", fmt, "--rows", str(args.rows)],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        label = "rows only" if fmt == "rows" else fmt
        rate = result["rows"] / result["seconds"] if result["seconds"] else float("inf")
        print(
            f"{label:<10}{rate:>12,.0f}{result['seconds']:>10.2f}"
            f"{result['bytes'] / 1e6:>12.1f}{result['peak_rss_mb']:>14.0f}"
        )


if __name__ == "__main__":
    main()
