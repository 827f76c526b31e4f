"""`make run` from the outside: it serves health and the admin login, and Ctrl-C leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes_with_marker(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


@pytest.mark.slow
def test_make_run_serves_api_and_admin_and_stops_cleanly(tmp_path):
    marker = f"DOSSIER_TEST_MARKER={uuid.uuid4()}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}",
        PORT=str(port),
        DOSSIER_TEST_MARKER=marker.split("=", 1)[1],
    )
    env.pop("REDIS_URL", None)
    make = subprocess.Popen(
        ["make", "run"], cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline, health = time.monotonic() + 240, None
        while time.monotonic() < deadline:
            try:
                health = get(f"http://127.0.0.1:{port}/api/v1/health/")
                break
            except OSError:
                assert make.poll() is None, make.stdout.read().decode() if make.stdout else ""
                time.sleep(1)
        assert health is not None, "make run did not answer within 240 s"
        assert health[0] == 200
        assert json.loads(health[1]) == {"status": "ok", "database": "ok", "broker": "ok"}
        status, login = get(f"http://127.0.0.1:{port}/admin/login/")
        assert status == 200 and b'name="username"' in login
        assert len(processes_with_marker(marker)) >= 3  # bin/run.py, runserver, qcluster (+ workers)
    finally:
        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        output = make.communicate(timeout=60)[0].decode()
    assert "http://127.0.0.1:" in output and "dossier-demo" in output
    time.sleep(1)
    assert processes_with_marker(marker) == []
