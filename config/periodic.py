"""The cluster's periodic tasks, installed idempotently (by migrations and on demand)."""

from __future__ import annotations

from typing import Any

PERIODIC_TASKS = {
    "dossier.exports.maintenance": "exports.tasks.maintenance",
    "dossier.scheduling.tick": "scheduling.tasks.tick",
}


def install_periodic_tasks(schedule_model: Any = None, names: tuple[str, ...] | None = None) -> None:
    """Make sure each periodic task exists once, every minute (keyed by name).

    Migrations pass their historical ``Schedule`` model and the task they own.
    """
    if schedule_model is None:
        from django_q.models import Schedule

        schedule_model = Schedule
    for name, func in PERIODIC_TASKS.items():
        if names is not None and name not in names:
            continue
        schedule_model.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": "I", "minutes": 1, "repeats": -1}
        )
