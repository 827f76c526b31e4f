"""Enqueueing django-q2 tasks, after the caller's transaction commits."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue(func: str, *args: Any, task_name: str | None = None, group: str | None = None) -> None:
    """Queue ``func(*args)`` once the current transaction commits (ids, not instances).

    Options go in ``q_options`` so they never collide with the task's own arguments.
    ``TASKS_SYNC`` (a Dossier setting, read per call) lets end-to-end tests send tasks to a
    real cluster while unit tests run them inline through ``Q_CLUSTER['sync']``.

    A broker that cannot be reached (Redis restarting) is logged, not raised: the row the
    task is about is committed already, and the sweeps (``exports_recover``,
    ``runs_recover``) queue it again, so the caller (an API request) must not be told it
    failed. Inline (``sync``) tasks keep raising their own errors.
    """
    from django_q.tasks import async_task

    options: dict[str, Any] = {}
    if task_name:
        options["task_name"] = task_name
    if group:
        options["group"] = group
    sync = getattr(settings, "TASKS_SYNC", None)
    if sync is not None:
        options["sync"] = sync

    def send() -> None:
        try:
            async_task(func, *args, q_options=options)
        except Exception as exc:  # the broker's own errors (redis.ConnectionError, ...)
            if options.get("sync", settings.Q_CLUSTER.get("sync")):
                raise  # an inline task's own error
            logger.error(
                "could not queue task %s (%s: %s); the recovery sweep will queue it again",
                task_name or func,
                type(exc).__name__,
                exc,
            )

    transaction.on_commit(send)
