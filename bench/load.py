"""Load and fault test: Dossier as deployed (gunicorn + qcluster on PostgreSQL + Redis),
under many API clients and a minute where every schedule is due, with a cluster killed and
Redis restarted in the middle. One command, bounded in time, loopback only.

    .venv/bin/python bench/load.py                                  # the issue's size
    .venv/bin/python bench/load.py --cases 100000 --requests 60 --clients 10 --schedules 60
    .venv/bin/python bench/load.py --scale 0.1                      # the same, scaled

What runs: a Redis of its own (no snapshots, like the machine's), the Procfile's ``release``
(migrate), ``web`` (gunicorn, ``WEB_CONCURRENCY`` workers) and three ``worker`` processes
(``qcluster``), an SMTP sink; PostgreSQL database ``dossier_load_<cases>`` (seeded once by
``seed_demo`` and reused). Three organizations: one with ``--cases`` cases, one with a
twentieth, one with a hundredth. ``--clients`` threads ask for ``--requests`` exports over
the API (DRF token, mixed formats and filters, 70 % for the large organization) spread over
``--ramp`` seconds and poll each until it ends; ``--schedules`` schedules (most of them the
large organization's) are due in the same coming minute and deliver by email and to storage.
``--kill-after`` seconds after that minute, once its runs are dispatched, the cluster with a
worker in the middle of a scheduled run, writing the run's export (``--kill-target busiest``:
the one holding the most running exports), is killed with SIGKILL (the whole process group)
and restarted ``--kill-downtime`` later; Redis is shut down ``--redis-after`` seconds after
the kill (losing what it holds) and started again. The test ends when every export and every
run has finished (then waits ``--settle`` seconds for late duplicates) or at the
``--seconds`` deadline, stops every process it started, and prints one table (exit status 1
on any duplicate, loss or timeout).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load_setup as data  # noqa: E402
from bench.load_clients import Clients, percentile  # noqa: E402
from bench.load_procs import (  # noqa: E402
    MailSink,
    Sampler,
    Service,
    free_port,
    http_wait,
    procfile_command,
    redis_restart,
    redis_service,
    redis_wait,
    smtp_start,
    stop_all,
)

DEFAULTS = {"cases": 1_000_000, "requests": 200, "clients": 20, "schedules": 300}
CLUSTERS = 3


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, help=f"cases of the large organization ({DEFAULTS['cases']:,})")
    parser.add_argument("--requests", type=int, help=f"export requests over the API ({DEFAULTS['requests']})")
    parser.add_argument("--clients", type=int, help=f"concurrent API clients ({DEFAULTS['clients']})")
    parser.add_argument("--schedules", type=int, help=f"schedules due in the same minute ({DEFAULTS['schedules']})")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the four sizes above (unless given)")
    parser.add_argument("--seconds", type=int, default=1800, help="deadline of the test once seeded (1800)")
    parser.add_argument("--ramp", type=float, default=150, help="seconds over which the requests are sent (150)")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between a client's status polls (2)")
    parser.add_argument("--web-concurrency", type=int, default=4, help="gunicorn worker processes (4)")
    parser.add_argument("--q-workers", type=int, default=2, help="worker processes per qcluster (2)")
    parser.add_argument("--kill-after", type=float, default=20, help="kill a cluster this long after the slot (20)")
    parser.add_argument(
        "--kill-target",
        choices=("run", "busiest"),
        default="run",
        help="kill the cluster with a worker in the middle of a scheduled run, writing its export (the default; "
        "the busiest one if none is seen within a minute), or the one holding the most running exports",
    )
    parser.add_argument("--kill-downtime", type=float, default=5, help="seconds before it is restarted (5)")
    parser.add_argument("--redis-after", type=float, default=30, help="restart Redis this long after the kill (30)")
    parser.add_argument("--redis-downtime", type=float, default=3, help="seconds Redis stays down (3)")
    parser.add_argument("--settle", type=float, default=70, help="seconds to watch for late duplicates (70)")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres", help="server URL")
    parser.add_argument("--database", help="database name (dossier_load_<cases>)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    for key, value in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, max(1 if key != "clients" else 2, round(value * args.scale)))
    return args


def service_env(
    args: argparse.Namespace, *, db_url: str, redis_url: str, web_port: int, smtp_port: int
) -> dict[str, str]:
    """Production settings (DEBUG off) on loopback: the documented variables of docs/deploy.md."""
    dropped = ("DJANGO_", "PYTEST", "SECURE_", "CSRF_", "LOG_", "Q_", "EXPORT", "EMAIL_", "GUNICORN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    for name in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SITE_URL", "DATABASE_URL", "REDIS_URL", "MEDIA_ROOT"):
        env.pop(name, None)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="False",
        SECRET_KEY=os.environ.get("LOAD_SECRET_KEY") or secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SITE_URL=f"http://127.0.0.1:{web_port}",
        SECURE_SSL_REDIRECT="False",  # plain HTTP on loopback: no TLS proxy in front
        SECURE_HSTS_SECONDS="0",
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        MEDIA_ROOT=str(ROOT / "var" / "load" / "media"),
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_port}",
        LOG_FORMAT="json",
        PORT=str(web_port),
        WEB_CONCURRENCY=str(args.web_concurrency),
        GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{web_port}",  # gunicorn.conf.py binds 0.0.0.0; loopback only here
        Q_WORKERS=str(args.q_workers),
    )
    return env


def shell(command: str) -> list[str]:
    return ["/bin/sh", "-c", f"exec {command}"]


def log(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:6.0f}s] {message}", flush=True)


def main() -> None:
    args = arguments()
    tag = time.strftime("%Y%m%d-%H%M%S")
    run_dir = ROOT / "var" / "load" / tag
    run_dir.mkdir(parents=True, exist_ok=True)
    db_name = args.database or f"dossier_load_{args.cases}"
    db_url = data.database_ensure(args.postgres, db_name)
    redis_port, web_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    sink = MailSink()
    smtp, smtp_port = smtp_start(sink)
    redis = redis_service(redis_port, run_dir)
    services: list[Service] = []
    try:
        env = service_env(args, db_url=db_url, redis_url=redis_url, web_port=web_port, smtp_port=smtp_port)
        os.environ.update(env)
        import django

        django.setup()
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's line-by-line session log
        orgs = data.organizations(args.cases)
        print(
            f"Load test {tag}: {args.cases:,} cases (+{orgs[1].cases:,}, +{orgs[2].cases:,}), {args.requests} "
            f"requests from {args.clients} clients, {args.schedules} schedules; database {db_name}; logs in {run_dir}",
            flush=True,
        )
        redis.start()
        redis_wait(redis_url)
        report = _run(args, tag=tag, run_dir=run_dir, env=env, redis=redis, services=services, sink=sink)
    finally:  # whatever happened, leave nothing running
        stop_all(services, timeout=30)
        redis.stop()
        smtp.stop()
    print()
    print(table(report, args))
    for run in report["lost_runs"][:10]:
        print(f"not successful: {run}")
    print(f"\nFigures and logs: {run_dir}")
    bad = sum(report["duplicates"].values()) + sum(report["lost"].values())
    sys.exit(1 if bad or report["timed_out"] else 0)


def _run(
    args: argparse.Namespace,
    *,
    tag: str,
    run_dir: Path,
    env: dict[str, str],
    redis: Service,
    services: list[Service],
    sink: MailSink,
) -> dict[str, Any]:
    """Seed, start the services, load them, inject the faults, stop them; the figures."""
    from django.utils import timezone

    db_url, db_name, redis_url = env["DATABASE_URL"], env["DATABASE_URL"].rsplit("/", 1)[1], env["REDIS_URL"]
    web_port = int(env["PORT"])
    t_setup = time.monotonic()
    orgs = data.organizations(args.cases)
    data.release(env)
    seeded = data.seed(env, orgs)
    log(f"seeding: {', '.join(f'{k} {v:.0f} s' for k, v in seeded.items()) or 'already there'}", t_setup)
    owners = data.members_and_tokens(orgs)
    cleared = data.leftovers_clear(orgs)
    schedule_ids = data.schedules_create(orgs, owners, args.schedules, tag)
    log(f"{len(schedule_ids)} schedules created; leftovers of earlier runs: {cleared}", t_setup)

    started = time.monotonic()
    deadline = time.time() + args.seconds
    web = Service("web", shell(procfile_command("web")), env, run_dir)
    clusters = [Service(f"worker-{n}", shell(procfile_command("worker")), env, run_dir) for n in range(1, CLUSTERS + 1)]
    services += [web, *clusters]
    for service in services:
        service.start()
    http_wait(f"http://127.0.0.1:{web_port}/api/v1/health/")
    sampler = Sampler(database_url=db_url, database=db_name, redis_url=redis_url, services=[web, *clusters, redis])
    sampler.start()
    since = timezone.now()
    slot = data.coming_minute(lead=20)
    data.schedules_due(schedule_ids, slot)
    log(f"web :{web_port}, {args.web_concurrency} workers; {CLUSTERS} clusters; due {slot:%H:%M:%S}Z", started)
    clients = Clients(
        port=web_port,
        tokens={slug: token for slug, (_, token) in owners.items()},
        requests=args.requests,
        clients=args.clients,
        ramp=args.ramp,
        poll=args.poll,
        deadline=deadline,
    )
    clients.start()

    from bench.load_checks import collect, in_flight, processing_by_pid, runs_dispatched, settled

    faults: dict[str, Any] = {}
    killed_jobs: list[str] = []
    finished_at: float | None = None
    last_report = 0.0
    slot_ts = slot.timestamp()
    while time.time() < deadline:
        now = time.time()
        if "kill" not in faults and now >= slot_ts + args.kill_after:
            # Mid-run: once the slot's runs are dispatched, the cluster with a worker inside a
            # scheduled run (or holding the most running exports); a minute later, the busiest.
            late = now >= slot_ts + args.kill_after + 60
            holding = processing_by_pid(in_runs=args.kill_target == "run" and not late)
            load = {c.name: sum(holding.get(pid, 0) for pid in c.pids()) for c in clusters}
            if late and not any(load.values()):
                holding = processing_by_pid()
                load = {c.name: sum(holding.get(pid, 0) for pid in c.pids()) for c in clusters}
            victim = max(clusters, key=lambda c: load[c.name])
            dispatched = runs_dispatched(schedule_ids, slot) > 0
            if (dispatched and load[victim.name]) or late:
                flight = in_flight(victim.pids())
                pids = victim.kill()
                killed_jobs = [f["job"] for f in flight]
                faults["kill"] = {"at": now - slot_ts, "cluster": victim.name, "processes": len(pids), "held": flight}
                log(f"SIGKILL {victim.name} ({len(pids)} processes) holding {len(flight)} exports", started)
                time.sleep(args.kill_downtime)
                victim.start()
                log(f"{victim.name} restarted", started)
        if "kill" in faults and "redis" not in faults and now >= slot_ts + faults["kill"]["at"] + args.redis_after:
            import redis as redis_lib

            try:
                queued = redis_lib.from_url(redis_url).llen("django_q:dossier:q")
            except redis_lib.RedisError:
                queued = -1
            down = redis_restart(redis, redis_url, args.redis_downtime)
            faults["redis"] = {"at": now - slot_ts, "queued_lost": queued, "down_seconds": down}
            log(f"Redis restarted: {queued} tasks in its list dropped, unreachable {down:.1f} s", started)
        if "kill" not in faults and now >= slot_ts + args.kill_after:
            time.sleep(0.2)  # hunting for a worker inside a run: look often, a run's export can take a second
            continue
        api_open, runs_open = settled([j.id for j in clients.jobs if j.id], schedule_ids, slot)
        created_all = all(j.create_status for j in clients.jobs)
        done = created_all and api_open == 0 and runs_open == 0 and "redis" in faults
        if done and finished_at is None:
            finished_at = time.time()
            log(f"everything finished; watching {args.settle:.0f} s for late duplicates", started)
        if finished_at is not None and time.time() >= finished_at + args.settle:
            break
        if now - last_report >= 15:
            last_report = now
            sample = sampler.samples[-1] if sampler.samples else {}
            log(
                f"api open {api_open}, runs open {runs_open}, queue {sample.get('queue', '?')}, "
                f"cpu {sample.get('cpu', 0):.0f} %, pg conns {sample.get('pg_db', '?')}",
                started,
            )
        time.sleep(1)
    timed_out = finished_at is None
    clients.stop.set()
    clients.join()
    sampler.stop_event.set()
    sampler.join()
    from ops.selectors import ops_status_read

    ops = ops_status_read(organization_ids=None)
    log("stopping services: SIGTERM to every process group, SIGKILL after 30 s", started)
    stop_started = time.monotonic()
    needed_kill = stop_all(services, timeout=30)
    stop_seconds = time.monotonic() - stop_started

    recoveries = _recoveries(clusters)
    users = [user for user, _ in owners.values()]
    found = collect(
        api_ids=[j.id for j in clients.jobs if j.id],
        schedule_ids=schedule_ids,
        slot=slot,
        since=since,
        users=users,
        sink=sink,
        storage_root=Path(env["MEDIA_ROOT"]) / "exports" / "load" / tag,
        killed_jobs=killed_jobs,
    )
    report = {
        "tag": tag,
        "args": vars(args) | {"json": str(args.json) if args.json else None},
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}",
        "timed_out": timed_out,
        "test_seconds": time.monotonic() - started,
        "faults": faults,
        "recoveries": recoveries,
        "shutdown": {"seconds": stop_seconds, "sigkilled": needed_kill},
        "ops_status_at_end": ops,
        "calls": _calls(clients),
        "create_errors": [j.create_error for j in clients.jobs if j.create_status != 202][:10],
        "peaks": {
            key: sampler.peak(key) for key in ("cpu", "load1", "pg_db", "pg_all", "queue", "redis_clients", "rss_mb")
        },
        "cpu_mean": sampler.mean("cpu"),
        **found,
    }
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return report


def _recoveries(clusters: list[Service]) -> dict[str, int]:
    """Tasks the sweeps queued again, read from the workers' logs by their task names:
    ``export-<id>-retry<n>`` (a lease ran out), ``export-<id>-lost`` (``-requeue`` before
    that sweep was folded into the line's) (a pending job's task was lost, its turn had come),
    ``schedule-run-<id>-recover`` (a run's task was lost or its lease ran out)."""
    pattern = re.compile(r"processing (export|schedule-run)-[0-9a-f-]{36}-(retry\d+|requeue|lost|recover)\b")
    counts: Counter[str] = Counter()
    for cluster in clusters:
        for match in pattern.finditer(cluster.log_path.read_text(errors="replace")):
            kind = {"lost": "requeue"}.get(match.group(2), match.group(2))
            kind = "retry" if kind.startswith("retry") else kind
            counts[f"{match.group(1)} {kind}"] += 1
    return dict(counts)


def _calls(clients: Clients) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("create", "status"):
        calls = [c for c in clients.calls if c.kind == kind]
        ms = [c.seconds * 1000 for c in calls if c.status and c.status < 500]
        out[kind] = {
            "count": len(calls),
            "errors": sum(1 for c in calls if not c.status or c.status >= 500),
            "p50_ms": percentile(ms, 0.5),
            "p99_ms": percentile(ms, 0.99),
            "max_ms": max(ms) if ms else float("nan"),
            "failures": [
                f"{time.strftime('%H:%M:%S', time.gmtime(c.started))}Z {c.status} {c.error}"
                for c in calls
                if not c.status or c.status >= 500
            ][:10],
        }
    return out


def table(r: dict[str, Any], args: argparse.Namespace) -> str:
    """The report as a Markdown table."""
    c, f = r["calls"], r["faults"]
    kill = f.get("kill", {})
    red = f.get("redis", {})
    held = kill.get("held", [])
    rec = r["recoveries"]
    recovered = sum(1 for j in r["killed_jobs"] if j["status"] == "completed")
    rows = [
        ("machine", r["machine"]),
        (
            "size",
            f"{args.cases:,} cases (+ {data.organizations(args.cases)[1].cases:,} + "
            f"{data.organizations(args.cases)[2].cases:,}); {args.requests} requests / {args.clients} clients; "
            f"{args.schedules} schedules; gunicorn {args.web_concurrency} workers; {CLUSTERS} qclusters × "
            f"{args.q_workers} workers",
        ),
        ("API create p50 / p99", f"{c['create']['p50_ms']:.0f} ms / {c['create']['p99_ms']:.0f} ms"),
        ("API status p50 / p99", f"{c['status']['p50_ms']:.0f} ms / {c['status']['p99_ms']:.0f} ms"),
        (
            "API calls (errors)",
            f"{c['create']['count']} create ({c['create']['errors']}), {c['status']['count']} status "
            f"({c['status']['errors']}); jobs made without a 202: {r['api_unacknowledged']}",
        ),
        (
            "exports completed / jobs per minute",
            f"{r.get('completed_exports', 0)} ({r.get('rows_exported', 0):,} rows) in "
            f"{r.get('span_minutes', float('nan')):.1f} min: {r.get('jobs_per_minute', float('nan')):.1f}/min "
            f"(busiest minute {r.get('peak_jobs_per_minute', 0)})",
        ),
        (
            "scheduled: slot → dispatched p50 / max",
            f"{r['dispatch']['p50']:.0f} s / {r['dispatch']['max']:.0f} s",
        ),
        (
            "scheduled: slot → report's export start p50 / p99 / max",
            f"{r['start']['p50']:.0f} s / {r['start']['p99']:.0f} s / {r['start']['max']:.0f} s",
        ),
        (
            "scheduled: slot → delivered p50 / p99 / max",
            f"{r['delivered']['p50']:.0f} s / {r['delivered']['p99']:.0f} s / {r['delivered']['max']:.0f} s",
        ),
        (
            "small organization's report: max wait (export start / delivered)",
            f"{r['small_export_start_max']:.0f} s / {r['small_delivered_max']:.0f} s",
        ),
        (
            "fault: cluster SIGKILL",
            f"{kill.get('cluster', '-')} at slot + {kill.get('at', float('nan')):.0f} s, holding {len(held)} "
            f"exports ({sum(1 for h in held if h['source'] == 'schedule')} of scheduled reports); "
            f"{recovered} of them completed later",
        ),
        (
            "fault: Redis restart",
            f"at slot + {red.get('at', float('nan')):.0f} s, down {red.get('down_seconds', float('nan')):.1f} s, "
            f"{red.get('queued_lost', '?')} tasks in its list dropped (the clusters' pushers hold the rest)",
        ),
        (
            "tasks queued again by the sweeps",
            f"exports after a lease ran out {rec.get('export retry', 0)}, exports whose task was lost "
            f"{rec.get('export requeue', 0)}, runs {rec.get('schedule-run recover', 0)}",
        ),
        ("duplicates", _total(r["duplicates"])),
        (
            "lost jobs or deliveries",
            _total(r["lost"]) + "".join(f"; {why}: {n}" for why, n in r["lost_detail"].items()),
        ),
        ("API exports unfinished at the deadline (still in line)", str(r["api_unfinished"])),
        (
            "peaks",
            f"CPU {r['peaks']['cpu']:.0f} % (mean {r['cpu_mean']:.0f} %), load {r['peaks']['load1']:.1f}, "
            f"PostgreSQL connections {r['peaks']['pg_db']:.0f} (server {r['peaks']['pg_all']:.0f}), Redis queue "
            f"{r['peaks']['queue']:.0f}, RSS {r['peaks']['rss_mb']:.0f} MB",
        ),
        (
            "shutdown on SIGTERM",
            f"{r['shutdown']['seconds']:.0f} s; still running after 30 s: "
            f"{', '.join(r['shutdown']['sigkilled']) or 'none'}",
        ),
        ("test time", f"{r['test_seconds']:.0f} s{' (deadline reached)' if r['timed_out'] else ''}"),
    ]
    lines = ["| measure | result |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def _total(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    detail = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
    return f"**{total}**" + (f" ({detail})" if detail else "")


if __name__ == "__main__":
    main()
