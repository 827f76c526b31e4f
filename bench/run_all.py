"""``make bench``: every export format through the worker path on SQLite and PostgreSQL,
beside the anchors measured in the same run, in one table.

    make bench ROWS=1000000        # .venv/bin/python bench/run_all.py --cases 1000000

Anchors (what the hardware and the libraries can do with the same rows): a raw read of the
same columns (``COPY … TO STDOUT`` on PostgreSQL, a cursor loop on SQLite) for CSV and
JSONL; the same rows read raw and written by pyarrow for Parquet; XlsxWriter's
``constant_memory`` mode writing as many rows and columns for XLSX. "× anchor" is the
export's time over the anchor's for as many case rows (1.0 = as fast as the anchor; the
XlsxWriter anchor writes at most 20,000 rows); with ``--rounds N`` (``make bench ROUNDS=3``)
every anchor and format runs N times, alternated, and the table gives the median run and
the median of the rounds' ratios with their range (a shared machine's pace drifts). django-import-export, the
peer users would otherwise pick, exports the same cases as CSV (on at most ``--peer-rows``
rows: it needs minutes). SQLite lives in ``var/bench_<cases>.sqlite3``; PostgreSQL in the
``dossier_bench_<cases>`` database of ``BENCH_POSTGRES_URL`` (default the local server),
skipped when no server answers. Data is seeded once per size and kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPORTS = ROOT / "bench" / "bench_exports.py"
FORMATS = ("csv", "jsonl", "parquet", "xlsx")
ANCHOR = {"csv": "anchor_read", "jsonl": "anchor_read", "parquet": "anchor_parquet", "xlsx": "anchor_xlsx"}


def postgres_url(cases: int) -> str | None:
    """The benchmark database for this size on the PostgreSQL server, created if missing;
    None when no server answers."""
    import psycopg

    server = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    name = f"dossier_bench_{cases}"
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=3) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None
    return f"{server.rsplit('/', 1)[0]}/{name}"


def run(database_url: str, cases: int, peer_rows: int, rounds: int) -> dict:  # type: ignore[type-arg]
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "config.settings"}
        command = [sys.executable, str(EXPORTS), "--cases", str(cases), "--report", report.name]
        subprocess.run([*command, "--peer-rows", str(peer_rows), "--rounds", str(rounds)], env=env, check=True)
        return json.loads(Path(report.name).read_text())  # type: ignore[no-any-return]


def table(reports: list[dict]) -> str:  # type: ignore[type-arg]
    lines = [
        "| database | format | rows | seconds | rows/s | MB/s | peak RSS MB | anchor | × anchor |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for report in reports:
        results = report["results"]
        for name, r in results.items():
            anchor = ANCHOR.get(name)
            ratio = ""
            if anchor is not None and anchor in report["rounds"]:
                ratio = _ratio(report, name, anchor)
            elif name == "import_export" and "csv" in results:
                ours = results["csv"]["rows"] / results["csv"]["seconds"]
                ratio = f"csv is {ours / (r['rows'] / r['seconds']):.0f}× faster"
            lines.append(
                f"| {report['database']} | {name} | {r['rows']:,.0f} | {r['seconds']:.1f} | "
                f"{r['rows'] / r['seconds']:,.0f} | {r['mb'] / r['seconds']:.1f} | {r['rss_mb']:.0f} | "
                f"{anchor or ''} | {ratio} |"
            )
    return "\n".join(lines)


def _ratio(report: dict, name: str, anchor: str) -> str:  # type: ignore[type-arg]
    """The export's time over the anchor's for as many case rows: over several rounds, the
    median of each round's ratio (export and anchor measured in the same round) and the
    range."""
    rounds = report["rounds"]
    anchors = {base["round"]: base for base in rounds[anchor]}  # a failed run leaves its round out
    ratios = sorted(
        run["seconds"] / (base["seconds"] * run["rows"] / base["case_rows"])
        for run in rounds[name]
        if (base := anchors.get(run["round"])) is not None
    )
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}"
    return f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--peer-rows", type=int, default=20_000)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--rounds", type=int, default=1, help="each anchor and format this many times, alternated")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    (ROOT / "var").mkdir(exist_ok=True)
    databases = [] if args.skip_sqlite else [f"sqlite:///{ROOT / 'var' / f'bench_{args.cases}.sqlite3'}"]
    if (url := postgres_url(args.cases)) is not None:
        databases.append(url)
    else:
        print("PostgreSQL is not answering: SQLite only.")
    reports = [run(url, args.cases, args.peer_rows, args.rounds) for url in databases]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    widths = {r["columns"] for report in reports for r in report["results"].values() if "columns" in r}
    print(f"\n{args.cases:,} cases × {', '.join(map(str, sorted(widths)))} columns; {machine}")
    print(table(reports))


if __name__ == "__main__":
    main()
