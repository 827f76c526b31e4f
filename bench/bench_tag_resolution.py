"""Resolve 20 tag paths over N in-memory rows and print rows/s.

.venv/bin/python bench/bench_tag_resolution.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from tagging.resolution import compile_tags, row_resolver

SNAPSHOT = [
    {"slot": i + 1, "label": f"Tag {i + 1}", "source_entity": entity, "field_path": path, "data_type": data_type}
    for i, (entity, path, data_type) in enumerate(
        [
            ("case", "custom_fields.hr.region", "text"),
            ("case", "custom_fields.hr.employee_grade", "text"),
            ("case", "custom_fields.financial.amount", "number"),
            ("case", "custom_fields.legal.hold", "boolean"),
            ("case", "custom_fields.tags", "list"),
            ("case", "custom_fields.risk.score", "number"),
            ("case", "custom_fields.privacy.records_affected", "number"),
            ("case", "custom_fields.safety.injury", "boolean"),
            ("case", "business_unit", "text"),
            ("case", "created_at", "date"),
            ("case", "custom_fields.site_code", "text"),
            ("case", "custom_fields.intake.hotline_operator", "text"),
            ("case", "custom_fields.people.witnesses", "number"),
            ("riu", "reporter_relationship", "text"),
            ("riu", "custom_fields.caller.call_minutes", "number"),
            ("riu", "custom_fields.caller.callback_requested", "boolean"),
            ("investigation", "custom_fields.interviews", "number"),
            ("investigation", "custom_fields.legal_hold", "boolean"),
            ("investigation", "finding", "text"),
            ("investigation", "custom_fields.external_counsel", "text"),
        ]
    )
]


def make_rows(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        cf: dict[str, object] = {
            "hr": {"region": rng.choice(["EMEA", "AMER", "APAC"]), "employee_grade": "G7"},
            "risk": {"score": rng.random() * 10},
            "tags": ["a", "b"],
            "site_code": "US-100",
            "intake": {"hotline_operator": "In-house"},
        }
        if rng.random() < 0.3:
            cf["financial"] = {"amount": rng.random() * 10000}
        if rng.random() < 0.2:
            cf["legal"] = {"hold": True}
        rows.append(
            {
                "case": {"business_unit": "Retail", "created_at": "2026-01-02T03:04:05+00:00", "custom_fields": cf},
                "riu": {
                    "reporter_relationship": "employee",
                    "custom_fields": {"caller": {"call_minutes": 12, "callback_requested": True}},
                },
                "investigation": {"finding": "substantiated", "custom_fields": {"interviews": 3}}
                if rng.random() < 0.7
                else None,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    distinct = make_rows(min(args.rows, 50_000))
    resolve = row_resolver(compile_tags(SNAPSHOT))
    started = time.perf_counter()
    cells = 0
    for i in range(args.rows):
        cells += len(resolve(distinct[i % len(distinct)]))  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    print(
        f"tags=20 rows={args.rows:,} cells={cells:,} time={elapsed:.2f}s "
        f"rows/s={args.rows / elapsed:,.0f} cells/s={cells / elapsed:,.0f}"
    )


if __name__ == "__main__":
    main()
