"""A real django-q2 cluster in a subprocess, sharing the test database and files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from config.periodic import install_periodic_tasks

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """A DATABASE_URL naming the test database the test process is using."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@contextmanager
def qcluster(**extra_env: str) -> Iterator[subprocess.Popen[Any]]:
    """Start ``manage.py qcluster`` on the test database; stop its whole process group."""
    # Transactional tests flush every table, including the periodic tasks the migrations
    # installed: put them back as a deployment has them.
    install_periodic_tasks()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "Q_WORKERS": "1",
            **extra_env,
        }
    )
    log = open(Path(settings.MEDIA_ROOT).parent / "qcluster.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        with contextlib.suppress(ProcessLookupError):  # workers still exiting hold DB connections
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
