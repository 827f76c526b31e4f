"""Holding a lock from another connection, as another process or the tick would."""

from __future__ import annotations

import threading
import time
from typing import Any

from django.db import connection, transaction

HOLD_SECONDS = 3.0


class LockHolder(threading.Thread):
    """Another connection that locks one row (PostgreSQL) or the whole database (SQLite,
    whose IMMEDIATE transactions take the write lock at BEGIN) for a while."""

    def __init__(self, model: Any, pk: Any, seconds: float = HOLD_SECONDS) -> None:
        super().__init__(daemon=True)
        self.model, self.pk, self.seconds = model, pk, seconds
        self.locked = threading.Event()
        self.released_at = 0.0

    def take(self) -> None:
        """Start holding the lock, and return once it is held."""
        self.start()
        if not self.locked.wait(5):
            raise TimeoutError("the other connection could not take the lock")

    def run(self) -> None:
        try:
            with transaction.atomic():
                list(self.model.objects.select_for_update().filter(pk=self.pk))
                self.locked.set()
                time.sleep(self.seconds)
            self.released_at = time.monotonic()
        finally:
            connection.close()


def wait_briefly_for_locks() -> None:
    """This connection gives up on a lock after 0.3 s (SQLite's default here is 30 s)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA busy_timeout = 300")
        else:
            cursor.execute("SET lock_timeout = '300ms'")
