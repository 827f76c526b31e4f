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
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

ORG = "bench"
OPTIONS = {"max_investigations": 3, "include_overflow": True}
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

# The default export's people columns: (column key, role, Party field, a list of every one?).
PEOPLE = [
    ("reporter_name", "reporter", "full_name", False),
    ("reporter_email", "reporter", "email", False),
    ("reporter_phone", "reporter", "phone", False),
    ("subject_names", "subject", "full_name", True),
    ("subject_employee_ids", "subject", "employee_id", True),
    ("witness_names", "witness", "full_name", True),
]


def peak_rss_mb() -> float:
    """The peak resident memory of this process or of the part processes it forked (SQLite
    exports), the larger (VmHWM: ``ru_maxrss`` would also count the parent's memory at
    fork, carried over exec; a forked part's own ``ru_maxrss`` is its memory)."""
    parts = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return max(int(line.split()[1]) / 1024, parts)
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, parts)


def setup(cases: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from cases.models import Case
    from exports.party_pseudonyms import party_pseudonyms_refresh
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
    # A database seeded before pseudonyms were stored on this vendor gets them (none made: current).
    if made := party_pseudonyms_refresh(organization_id=org.pk):
        print(f"made {made:,} parties' pseudonyms ahead", flush=True)
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
    from exports.columns import catalog_for
    from exports.models import ExportJob
    from exports.services import export_job_create, export_job_run
    from organizations.models import Organization

    org = Organization.objects.get(slug=ORG)
    job = export_job_create(
        organization=org, dataset="cases", format=fmt, source="cli", enqueue_run=False, columns=OPTIONS
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
        "columns": len(catalog_for(dataset="cases", options=OPTIONS, snapshot=job.tag_snapshot)),
    }


def _plan_and_query():  # type: ignore[no-untyped-def]
    """The export's row plan and the SQL of the case columns and investigations it reads."""
    import django

    django.setup()
    from django.utils import timezone

    from exports.filters import cases_filtered
    from exports.rows import RowPlan
    from organizations.models import Organization
    from tagging.selectors import tag_slots_for

    org = Organization.objects.get(slug=ORG)
    snapshot = [t.snapshot() for t in tag_slots_for(organization=org, active_only=True)]
    plan = RowPlan(
        dataset="cases",
        options=OPTIONS,
        snapshot=snapshot,
        timezone=org.timezone,
        now=timezone.now(),
        pseudonym_key=bytes(org.pseudonym_key),
    )
    cases = cases_filtered(organization_id=org.pk, filters={}, timezone=org.timezone)
    sql, params = cases.order_by("created_at", "id").values_list(*plan.case_fields).query.sql_with_params()
    inv_sql = "SELECT * FROM cases_investigation WHERE organization_id = %s ORDER BY case_id, number"
    # The people in the cases: the default export pseudonymises six identity columns.
    # The parties' own columns (not the pseudonyms made ahead: the read is of the raw rows).
    party_sql = (
        "SELECT id, organization_id, case_id, role, full_name, email, phone, employee_id, job_title "
        "FROM cases_party WHERE organization_id = %s ORDER BY case_id, id"
    )
    return plan, [(sql, params), (inv_sql, (org.pk,)), (party_sql, (org.pk,))]


def _raw_blocks(queries):  # type: ignore[no-untyped-def]
    """The rows of ``queries`` as the database gives them: COPY CSV blocks on PostgreSQL,
    ``fetchmany`` batches of tuples on SQLite."""
    from django.db import connection

    with connection.cursor() as cursor:
        for query, args in queries:
            if connection.vendor == "postgresql":
                raw = cursor.cursor
                with raw.copy(f"COPY ({raw.mogrify(query, args)}) TO STDOUT (FORMAT csv)") as copy:
                    yield from copy
            else:
                cursor.execute(query, args)
                while batch := cursor.fetchmany(10_000):
                    yield batch


def anchor_read() -> dict[str, float]:
    """The same case columns and investigations read with no formatting: ``COPY (SELECT …)
    TO STDOUT`` on PostgreSQL, a cursor loop on SQLite. The anchor of CSV and JSONL."""
    from django.db import connection

    plan, queries = _plan_and_query()
    started = time.perf_counter()
    rows = size = 0
    for block in _raw_blocks(queries):
        if connection.vendor == "postgresql":
            rows += bytes(block).count(b"\n")
            size += len(block)
        else:
            rows += len(block)
    elapsed = time.perf_counter() - started
    cases = plan.count(plan_cases())
    return {"rows": rows, "seconds": elapsed, "mb": size / 1e6, "rss_mb": peak_rss_mb(), "case_rows": cases}


def plan_cases():  # type: ignore[no-untyped-def]
    from exports.filters import cases_filtered
    from organizations.models import Organization

    org = Organization.objects.get(slug=ORG)
    return cases_filtered(organization_id=org.pk, filters={}, timezone=org.timezone)


def anchor_parquet() -> dict[str, float]:
    """The same rows as ``anchor_read`` (the case columns, the investigations, the parties)
    read raw and written to Parquet by pyarrow, a file per query: COPY → pyarrow's CSV reader
    on PostgreSQL, cursor batches → Arrow on SQLite. The anchor of Parquet."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from django.db import connection

    plan, queries = _plan_and_query()
    started = time.perf_counter()
    rows = size = 0
    for query in queries:
        with tempfile.TemporaryFile() as out:
            writer = None
            if connection.vendor == "postgresql":
                with tempfile.TemporaryFile() as raw:
                    for block in _raw_blocks([query]):
                        raw.write(block)
                    raw.seek(0)
                    reader = pacsv.open_csv(
                        raw,
                        read_options=pacsv.ReadOptions(autogenerate_column_names=True),
                        parse_options=pacsv.ParseOptions(newlines_in_values=True),
                    )
                    for batch in reader:
                        writer = writer or pq.ParquetWriter(out, batch.schema)
                        writer.write_batch(batch)
                        rows += batch.num_rows
            else:
                with connection.cursor() as cursor:
                    cursor.execute(*query)
                    names = [column[0] for column in cursor.description]
                    while batch := cursor.fetchmany(10_000):
                        table = pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in batch])
                        writer = writer or pq.ParquetWriter(out, table.schema)
                        writer.write_table(table.cast(writer.schema))
                        rows += table.num_rows
            if writer is not None:
                writer.close()
            size += out.tell()
    elapsed = time.perf_counter() - started
    return {
        "rows": rows,
        "seconds": elapsed,
        "mb": size / 1e6,
        "rss_mb": peak_rss_mb(),
        "case_rows": plan.count(plan_cases()),
    }


def anchor_xlsx(limit: int = 20_000) -> dict[str, float]:
    """As many rows and columns written by XlsxWriter (``constant_memory``) from the raw
    case rows, with no per-value formatting: the anchor of XLSX. At most ``limit`` rows
    (≈ 1k rows/s: a million would take 17 minutes); compared per row."""
    import xlsxwriter
    from django.db import connection

    plan, queries = _plan_and_query()
    width = len(plan.columns)
    started = time.perf_counter()
    rows = 0
    with tempfile.NamedTemporaryFile(suffix=".xlsx") as out:
        book = xlsxwriter.Workbook(out.name, {"constant_memory": True, "strings_to_formulas": False})
        sheet = book.add_worksheet("Data")
        for block in _raw_blocks(queries[:1]):
            lines = bytes(block).decode().splitlines() if connection.vendor == "postgresql" else block
            for line in lines:
                values = line.split(",") if isinstance(line, str) else [str(v) for v in line]
                rows += 1
                sheet.write_row(rows, 0, (values * (width // len(values) + 1))[:width])
                if rows == limit:
                    break
            if rows == limit:
                break
        book.close()
        size = Path(out.name).stat().st_size
    elapsed = time.perf_counter() - started
    return {"rows": rows, "seconds": elapsed, "mb": size / 1e6, "rss_mb": peak_rss_mb(), "case_rows": rows}


def import_export(limit: int) -> dict[str, float]:
    """django-import-export's CSV of the same cases and columns, the way a careful user
    would configure it (the peer users would otherwise pick): a ModelResource with the core
    fields, choice labels, the case's people pseudonymised as Dossier's default export does
    them (``organizations.pseudonyms.pseudonym`` per value, the parties from a prefetch),
    three investigation groups from a prefetch and the 20 tag paths as ``dehydrate``
    methods. Capped at ``limit`` rows: it needs minutes."""
    import django

    django.setup()
    from import_export import fields, resources

    from cases.models import Case
    from exports.columns import INVESTIGATION_FIELDS
    from organizations.models import Organization
    from organizations.pseudonyms import pseudonym
    from tagging.resolution import compile_tags
    from tagging.selectors import tag_slots_for

    org = Organization.objects.get(slug=ORG)
    tags = compile_tags([t.snapshot() for t in tag_slots_for(organization=org, active_only=True)])
    attributes: dict[str, object] = {}

    def investigation(n: int, name: str):  # type: ignore[no-untyped-def]
        def read(self, case):  # type: ignore[no-untyped-def]
            invs = list(case.investigations.all())
            return getattr(invs[n], name) if len(invs) > n else None

        return read

    def tag_value(tag):  # type: ignore[no-untyped-def]
        def read(self, case):  # type: ignore[no-untyped-def]
            invs = list(case.investigations.all())
            riu = case.primary_riu
            entity = {
                "case": {"custom_fields": case.custom_fields, **case.__dict__},
                "riu": {"custom_fields": riu.custom_fields, **riu.__dict__} if riu else None,
                "investigation": {"custom_fields": invs[-1].custom_fields, **invs[-1].__dict__} if invs else None,
            }
            return tag.value(entity)

        return read

    secret = bytes(org.pseudonym_key)

    def people(column: str, role: str, field: str, *, many: bool):  # type: ignore[no-untyped-def]
        """A people column as the default export writes it: the first party's pseudonym,
        or every non-blank one of the role's, joined with "; "."""

        def read(self, case):  # type: ignore[no-untyped-def]
            values = [getattr(p, field) for p in case.parties.all() if p.role == role]
            if not many:
                return pseudonym(key=secret, column=column, value=values[0]) if values else None
            return "; ".join(pseudonym(key=secret, column=column, value=v) for v in values if v.strip()) or None

        return read

    for column, role, field, many in PEOPLE:
        attributes[column] = fields.Field(column_name=column)
        attributes[f"dehydrate_{column}"] = people(column, role, field, many=many)
    for n in range(3):
        for suffix, _, _, _, name in INVESTIGATION_FIELDS:
            key = f"investigation_{n + 1}_{suffix}"
            attributes[key] = fields.Field(column_name=key)
            attributes[f"dehydrate_{key}"] = investigation(n, name)
    for tag in tags:
        key = f"tag_{tag.slot}"
        attributes[key] = fields.Field(column_name=tag.label)
        attributes[f"dehydrate_{key}"] = tag_value(tag)
    attributes["Meta"] = type("Meta", (), {"model": Case})
    resource = type("CaseResource", (resources.ModelResource,), attributes)()
    cases = (
        Case.objects.filter(organization=org)
        .select_related("primary_riu", "assignee")
        .prefetch_related("investigations", "parties")
        .order_by("created_at", "id")[:limit]
    )
    started = time.perf_counter()
    text = resource.export(queryset=cases).csv
    return {
        "rows": limit if limit else Case.objects.filter(organization=org).count(),
        "seconds": time.perf_counter() - started,
        "mb": len(text.encode()) / 1e6,
        "rss_mb": peak_rss_mb(),
    }


ANCHORS: dict[str, Callable[[], dict[str, float]]] = {
    "anchor_read": anchor_read,
    "anchor_parquet": anchor_parquet,
    "anchor_xlsx": anchor_xlsx,
}


def measure(what: str, *, limit: int = 0) -> dict[str, float]:
    """Run one measurement in a fresh process (so its peak RSS is its own)."""
    args = [sys.executable, __file__, "--one", what, "--limit", str(limit)]
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"{what} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run of median time (the lower of the middle two), with the highest peak RSS."""
    middle = sorted(runs, key=lambda run: run["seconds"])[(len(runs) - 1) // 2]
    return {**middle, "rss_mb": max(run["rss_mb"] for run in runs)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--formats", default="csv,xlsx,jsonl,parquet")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--report", help="also write every result as JSON to this file")
    parser.add_argument("--peer-rows", type=int, default=20_000, help="rows for django-import-export (slow)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure the anchors and formats this many times, alternated"
    )
    args = parser.parse_args()
    if args.one:
        if args.one == "import_export":
            result = import_export(args.limit)
        elif args.one in ANCHORS:
            result = ANCHORS[args.one]()
        else:
            result = run_one(args.one)
        print(json.dumps(result))
        return
    setup(args.cases)
    vendor = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    print(f"\n{vendor}, {args.cases:,} cases, 3 investigation groups + overflow, 20 tags")
    print(f"{'format':<16}{'rows':>12}{'seconds':>10}{'rows/s':>10}{'MB':>9}{'peak RSS MB':>13}")
    results: dict[str, dict[str, float]] = {}
    formats = args.formats.split(",")
    anchors = ["anchor_read", *(["anchor_parquet"] if "parquet" in formats else [])]
    anchors += ["anchor_xlsx"] if "xlsx" in formats else []
    peers = ["import_export"] if args.peer_rows else []
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    rounds = args.rounds
    runs: dict[str, list[dict[str, float]]] = {}
    # Each round measures every anchor and format once, so a format's time is compared with
    # its anchor's of the same round: a shared machine's pace drifts from minute to minute.
    for round_ in range(rounds):
        for what in [*anchors, *formats, *(peers if round_ == 0 else [])]:
            try:
                r = measure(what, limit=min(args.peer_rows, args.cases))
            except RuntimeError as exc:
                print(f"{what:<16} failed: {exc}")
                continue
            runs.setdefault(what, []).append({**r, "round": round_})
            label = what if rounds == 1 else f"{what} ({round_ + 1}/{rounds})"
            print(
                f"{label:<16}{r['rows']:>12,.0f}{r['seconds']:>10.1f}{r['rows'] / r['seconds']:>10,.0f}"
                f"{r['mb']:>9.1f}{r['rss_mb']:>13.0f}",
                flush=True,
            )
    results = {what: median_run(measured) for what, measured in runs.items()}
    if args.report:
        report = {"database": vendor, "cases": args.cases, "results": results, "rounds": runs}
        Path(args.report).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
