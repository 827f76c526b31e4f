"""Enqueueing django-q2 tasks, after the caller's transaction commits."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction


def enqueue(func: str, *args: Any, task_name: str | None = None, group: str | None = None) -> None:
    """Queue ``func(*args)`` once the current transaction commits (ids, not instances).

    Options go in ``q_options`` so they never collide with the task's own arguments.
    ``TASKS_SYNC`` (a Dossier setting, read per call) lets end-to-end tests send tasks to a
    real cluster while unit tests run them inline through ``Q_CLUSTER['sync']``.
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

    transaction.on_commit(lambda: async_task(func, *args, q_options=options))
