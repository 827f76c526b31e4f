"""A heartbeat thread in each django-q2 worker process.

An idle worker is blocked reading its task queue, so the beat comes from a thread of its
own, writing on its own database connection (closed after each beat). It dies with the
process: a worker that was killed, recycled or stopped is no longer seen after a minute.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from typing import Any

from django.db import connection
from django.utils import timezone

from config.worker import worker_process_is_forked
from ops.services import worker_heartbeat_record, worker_heartbeats_prune

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 20
FORGET_AFTER = dt.timedelta(days=1)


_started = False


def worker_heartbeat_start(**_: Any) -> None:
    """Start this worker process's heartbeat (a receiver of django-q2's ``post_spawn``)."""
    global _started
    if _started or not worker_process_is_forked():
        return
    _started = True
    threading.Thread(target=_beat, name="dossier-worker-heartbeat", daemon=True).start()


def _beat() -> None:
    host, pid, started_at = socket.gethostname(), os.getpid(), timezone.now()
    try:
        worker_heartbeats_prune(before=started_at - FORGET_AFTER)
    except Exception:
        logger.warning("worker heartbeat: could not prune old rows", exc_info=True)
    while True:
        try:
            worker_heartbeat_record(host=host, pid=pid, started_at=started_at)
        except Exception:  # a busy or unreachable database: the next beat tries again
            logger.warning("worker heartbeat not recorded", exc_info=True)
        finally:
            connection.close()
        time.sleep(HEARTBEAT_SECONDS)
