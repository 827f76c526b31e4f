"""The processes of ``bench/load.py``: a Redis of its own, the Procfile's ``web`` and
``worker`` commands, an SMTP sink, and a sampler of CPU, connections and queue depth.

Everything listens on 127.0.0.1 only. Each service runs in a process group of its own, so a
cluster can be killed whole (sentinel, pusher, monitor and workers) with one SIGKILL, as a
machine that dies takes all of them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUEUE_KEY = "django_q:dossier:q"  # django-q2's Redis list for the cluster named "dossier"


def free_port() -> int:
    """A TCP port nobody listens on now (on loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def procfile_command(kind: str) -> str:
    """The command of one process type in the repository's ``Procfile``."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind:
            return command.strip()
    raise SystemExit(f"The Procfile has no {kind!r} process type.")


def _pids_in_group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, …
            pids.append(int(entry.name))
    return pids


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Service:
    """One Procfile process (or Redis) in a process group of its own, logging to a file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.command, self.env = name, command, env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        log = self.log_path.open("ab")
        log.write(f"\n--- {time.strftime('%H:%M:%S')} start {' '.join(self.command)}\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.starts += 1

    @property
    def pgid(self) -> int:
        assert self.process is not None
        return self.process.pid  # start_new_session: the leader's pid is the group id

    def pids(self) -> list[int]:
        return _pids_in_group(self.pgid) if self.process else []

    def rss_mb(self) -> float:
        return sum(_rss_mb(pid) for pid in self.pids())

    def kill(self) -> list[int]:
        """SIGKILL the whole group at once; returns the pids that were in it."""
        pids = self.pids()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=30)
        return pids

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM the group (graceful), then SIGKILL what is left after ``timeout``;
        returns whether every process of the group had left by itself."""
        return stop_all([self], timeout) == []


def stop_all(services: list[Service], timeout: float = 30) -> list[str]:
    """SIGTERM every service's process group at once (as a platform stops a release), wait
    up to ``timeout`` for all their processes to leave, SIGKILL what is left; returns the
    names of the services that had to be killed."""
    running = [s for s in services if s.process is not None and s.process.poll() is None]
    for service in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(s.pids() for s in running):
        time.sleep(0.2)
        for service in running:
            assert service.process is not None
            service.process.poll()  # reap the group leader so it leaves the process table
    killed = [s.name for s in running if s.pids()]
    for service in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pgid, signal.SIGKILL)
        assert service.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.process.wait(timeout=10)
    return killed


def redis_service(port: int, log_dir: Path) -> Service:
    """A Redis of this run's own, configured like the machine's (no snapshots, no AOF):
    a restart loses whatever was queued, which is the fault being tested."""
    data = log_dir / "redis"
    data.mkdir(exist_ok=True)
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    return Service("redis", [*command, "--dir", str(data), "--daemonize", "no"], dict(os.environ), log_dir)


def redis_wait(url: str, timeout: float = 20) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while True:
        try:
            if redis.from_url(url, socket_timeout=1).ping():
                return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def redis_restart(service: Service, url: str, downtime: float) -> float:
    """SHUTDOWN (nothing is saved: this Redis keeps no snapshot), wait, start it again with
    the same command line; returns the seconds it was unreachable."""
    import redis

    started = time.monotonic()
    with contextlib.suppress(redis.ConnectionError):  # the server closes the connection as it exits
        redis.from_url(url, socket_timeout=2).shutdown(nosave=True)
    assert service.process is not None
    service.process.wait(timeout=20)
    time.sleep(downtime)
    service.start()
    redis_wait(url)
    return time.monotonic() - started


def http_wait(url: str, timeout: float = 90) -> None:
    """Wait until ``url`` answers 200 (gunicorn booted, database and broker reachable)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer 200 within {timeout:.0f} s")
        time.sleep(0.5)


# --- SMTP sink ----------------------------------------------------------------------------------


@dataclass
class MailSink:
    """Every message received, by recipient and by Dossier's Message-ID (run and delivery)."""

    by_recipient: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_delivery: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    received_at: dict[str, float] = field(default_factory=dict)
    total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        match = re.search(r"dossier-([0-9a-f-]{36}-\d+)", message.get("Message-ID", ""))
        with self.lock:
            self.total += 1
            for rcpt in envelope.rcpt_tos:
                self.by_recipient[rcpt.lower()] += 1
                self.received_at.setdefault(rcpt.lower(), time.time())
            if match:
                self.by_delivery[match.group(1)] += 1
        return "250 Message accepted for delivery"


def smtp_start(sink: MailSink) -> tuple[Any, int]:
    """An aiosmtpd server on a free loopback port, in a thread of this process."""
    from aiosmtpd.controller import Controller

    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, data_size_limit=64 * 1024 * 1024)
    controller.start()
    return controller, port


# --- sampler ------------------------------------------------------------------------------------


def _cpu_times() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class Sampler(threading.Thread):
    """Once a second: CPU busy share, load average, PostgreSQL connections (this database and
    the whole server), Redis queue depth and clients, and the services' memory."""

    def __init__(self, *, database_url: str, database: str, redis_url: str, services: list[Service]) -> None:
        super().__init__(daemon=True, name="load-sampler")
        self.database_url, self.database, self.redis_url, self.services = database_url, database, redis_url, services
        self.stop_event = threading.Event()
        self.samples: list[dict[str, float]] = []

    def run(self) -> None:
        import psycopg
        import redis

        busy0, total0 = _cpu_times()
        pg: Any = None
        broker = redis.from_url(self.redis_url, socket_timeout=1)
        while not self.stop_event.wait(1.0):
            busy1, total1 = _cpu_times()
            sample: dict[str, float] = {
                "t": time.time(),
                "cpu": 100.0 * (busy1 - busy0) / max(1, total1 - total0),
                "load1": float(Path("/proc/loadavg").read_text().split()[0]),
                "rss_mb": sum(s.rss_mb() for s in self.services),
            }
            busy0, total0 = busy1, total1
            try:
                if pg is None or pg.closed:
                    pg = psycopg.connect(self.database_url, autocommit=True, connect_timeout=3)
                mine, everyone = pg.execute(
                    "SELECT count(*) FILTER (WHERE datname = %s), count(*) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend'",
                    [self.database],
                ).fetchone()
                sample["pg_db"], sample["pg_all"] = float(mine) - 1, float(everyone) - 1  # not counting ours
            except psycopg.Error:
                pg = None
            try:
                sample["queue"] = float(broker.llen(QUEUE_KEY))
                sample["redis_clients"] = float(broker.info("clients")["connected_clients"]) - 1
            except redis.RedisError:
                pass
            self.samples.append(sample)
        if pg is not None:
            pg.close()

    def peak(self, key: str) -> float:
        values = [s[key] for s in self.samples if key in s]
        return max(values) if values else float("nan")

    def mean(self, key: str, since: float = 0.0, until: float = float("inf")) -> float:
        values = [s[key] for s in self.samples if key in s and since <= s["t"] <= until]
        return sum(values) / len(values) if values else float("nan")
