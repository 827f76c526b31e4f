from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    verbose_name = "Scheduled reports"

    def seed_demo(self, *, organization: Any, owner: Any) -> dict[str, int]:
        """Demo schedules for ``seed_demo`` (only when there is an owner and none exist yet)."""
        from scheduling.demo import schedules_seed

        return {"schedules": schedules_seed(organization=organization, owner=owner)} if owner else {}
