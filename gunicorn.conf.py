"""gunicorn's settings for the Procfile's web process (``gunicorn config.wsgi``).

gunicorn reads this file from its working directory. The environment decides: ``PORT``
(8000), ``WEB_CONCURRENCY`` (processes; 2 x cores + 1, at most 8), ``FORWARDED_ALLOW_IPS``
(addresses whose ``X-Forwarded-Proto`` is believed; the TLS proxy's) and ``LOG_FORMAT``.
``GUNICORN_CMD_ARGS`` overrides anything here, for example ``--threads 8``. These are
the web server's settings, not Django's: Django's stay in ``config/settings.py``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from gunicorn.glogging import Logger


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this container may use, not the host's
    except AttributeError:  # macOS
        return os.cpu_count() or 1


# Signed download links (/d/<token>/) are bearer credentials for days: keep them out of
# the access log, in the request line, the query (?next=/d/…) and the referrer alike.
_DOWNLOAD_TOKEN = re.compile(r"(/|%2F)d(/|%2F)[^/%?&\s\"]+", re.IGNORECASE)


class AccessLogger(Logger):
    """gunicorn's logger with download tokens in access lines replaced by ``…``."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "q", "f"):
            if isinstance(atoms.get(key), str):
                atoms[key] = _DOWNLOAD_TOKEN.sub(r"\1d\2…", atoms[key])
        return atoms


bind = [f"0.0.0.0:{os.environ.get('PORT') or '8000'}"]
# Each process holds Django and its database connections; past 8 more processes add
# memory faster than throughput for a mostly database-bound admin and API.
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * _cores() + 1, 8))
# Threads keep the process answering gunicorn's heartbeat while a thread streams a large
# export download (local storage), which a sync worker would be killed for after `timeout`.
worker_class = "gthread"
threads = 4
timeout = 60
graceful_timeout = 30  # on SIGTERM, requests in flight get this long to finish
keepalive = 5  # a little longer than nothing: the proxy in front reuses connections
# No recycling after N requests: with gthread workers a process retiring at
# ``max_requests`` resets the connections it had accepted but not yet served (measured
# by bench/load.py: 2 of 8,446 API calls, each at a recycle; gunicorn issue #3038, open).
# Where slow leaks matter more, ``GUNICORN_CMD_ARGS="--max-requests 2000
# --max-requests-jitter 200"`` turns it on, best behind a proxy that retries.
max_requests = 0
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # the heartbeat file; a disk-backed /tmp can stall it

accesslog = "-"  # stdout
errorlog = "-"  # stderr
logger_class = AccessLogger
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
if os.environ.get("LOG_FORMAT", "text").strip().lower() == "json":
    from config.logs import logging_config

    logconfig_dict = logging_config(
        log_format="json",
        level=os.environ.get("LOG_LEVEL", "INFO"),
        own_loggers=("gunicorn.error", "gunicorn.access"),
    )
