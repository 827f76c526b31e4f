"""API clients of ``bench/load.py``: threads that ask for exports over HTTP with a DRF token
and poll each one until it ends, timing every call."""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

TERMINAL = {"completed", "failed", "cancelled", "expired"}

# Request i goes to the organization at position i % 10: the large one gets most of them.
ORG_PATTERN = ("load-large",) * 7 + ("load-medium",) * 2 + ("load-small",)
FILTERS: tuple[dict[str, Any], ...] = (
    {},  # every case
    {"period": "previous_quarter"},
    {"period": "previous_year"},
    {"severity": ["high", "critical"]},
    {"period": "last_7_days"},
)
FORMATS = ("csv", "xlsx", "jsonl", "parquet")


@dataclass
class Call:
    """One HTTP call: what, when it started (epoch), how long, the status (0: no answer)."""

    kind: str
    started: float
    seconds: float
    status: int
    error: str = ""


@dataclass
class Job:
    """An export asked for by a client: its request and what the API said about it."""

    index: int
    org: str
    format: str
    filters: dict[str, Any]
    id: str | None = None
    create_status: int = 0
    create_error: str = ""
    status: str = ""
    done_at: float | None = None


@dataclass
class Clients:
    """``clients`` threads sharing ``requests`` export requests, spread over ``ramp`` seconds."""

    port: int
    tokens: dict[str, str]
    requests: int
    clients: int
    ramp: float
    poll: float
    deadline: float
    calls: list[Call] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    started: float = 0.0

    def start(self) -> None:
        self.jobs = [
            Job(
                index=i,
                org=ORG_PATTERN[i % len(ORG_PATTERN)],
                format=FORMATS[(i // 2) % len(FORMATS)],
                filters=FILTERS[i % len(FILTERS)],
            )
            for i in range(self.requests)
        ]
        self.started = time.time()
        for number in range(self.clients):
            mine = [job for job in self.jobs if job.index % self.clients == number]
            thread = threading.Thread(target=self._client, args=(mine,), name=f"client-{number}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join()

    def open_jobs(self) -> int:
        return sum(1 for job in self.jobs if job.id and job.status not in TERMINAL)

    def _call(self, kind: str, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        started = time.time()
        t0 = time.perf_counter()
        status, payload = 0, None
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            status = response.status
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = raw[:500].decode(errors="replace")
        except OSError as exc:
            payload = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        error = "" if status and status < 500 else str(payload)[:200]
        with self.lock:
            self.calls.append(Call(kind, started, time.perf_counter() - t0, status, error))
        return status, payload

    def _client(self, mine: list[Job]) -> None:
        """Ask for each of this client's exports at its time, and poll the open ones between."""
        gap = self.ramp / max(1, self.requests)
        pending = list(mine)
        next_poll = time.time()
        while not self.stop.is_set() and time.time() < self.deadline:
            now = time.time()
            if pending and now >= self.started + pending[0].index * gap:
                self._create(pending.pop(0))
                continue
            if now >= next_poll:
                for job in mine:
                    if job.id and job.status not in TERMINAL:
                        self._status(job)
                next_poll = time.time() + self.poll
            if not pending and all(not job.id or job.status in TERMINAL for job in mine):
                return
            wake = min([next_poll] + ([self.started + pending[0].index * gap] if pending else []))
            self.stop.wait(max(0.05, min(1.0, wake - time.time())))

    def _create(self, job: Job) -> None:
        body = {"dataset": "cases", "format": job.format, "filters": job.filters}
        status, payload = self._call("create", "POST", f"/api/v1/orgs/{job.org}/exports/", self.tokens[job.org], body)
        job.create_status = status
        if status == 202 and isinstance(payload, dict):
            job.id, job.status = payload["id"], payload["status"]
        else:
            job.create_error = str(payload)[:300]

    def _status(self, job: Job) -> None:
        path = f"/api/v1/orgs/{job.org}/exports/{job.id}/"
        status, payload = self._call("status", "GET", path, self.tokens[job.org])
        if status == 200 and isinstance(payload, dict):
            job.status = payload["status"]
            if job.status in TERMINAL and job.done_at is None:
                job.done_at = time.time()


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0–1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[rank]
