"""Status writes that must land: retried with backoff while the database is busy.

A worker that finished (or failed) a job has to say so, or a client polling the API sees
``processing`` for a job nobody holds. On the embedded SQLite default a write can meet a
lock held longer than the busy timeout (a bulk load, a long write elsewhere); on PostgreSQL
a ``lock_timeout`` or a dropped connection does the same. Both surface as Django's
``OperationalError``: such a write is retried, whole, after a growing pause with jitter.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

# 0.5 s doubling to 8 s: about a minute and a half of trying, under a job's lease.
WRITE_ATTEMPTS = 8
FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 8.0


def db_write_retry(
    write: Callable[[], T],
    *,
    what: str,
    attempts: int = WRITE_ATTEMPTS,
    first_delay: float = FIRST_DELAY_SECONDS,
) -> T:
    """Call ``write()`` (a whole transaction) until it gets past a busy or lost database.

    Only for calls outside any transaction: inside one, the failed statement has already
    broken the caller's transaction and only the caller can start it again.
    """
    if connection.in_atomic_block:
        return write()
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except OperationalError as exc:
            if attempt == attempts:
                raise
            logger.warning("%s: database busy (%s); retry %d of %d in %.1f s", what, exc, attempt, attempts - 1, delay)
            connection.close_if_unusable_or_obsolete()
            time.sleep(delay + random.uniform(0, delay / 4))
            delay = min(delay * 2, MAX_DELAY_SECONDS)
    raise AssertionError("unreachable")  # the loop returns or raises
