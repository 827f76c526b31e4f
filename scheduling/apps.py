from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    verbose_name = "Scheduled reports"

    def ready(self) -> None:
        # A run waiting for its export (queued under the organization's cap) goes on when it ends.
        from exports.signals import export_job_finished
        from scheduling.runner import runs_wake

        export_job_finished.connect(runs_wake, dispatch_uid="scheduling.runs_wake")

    def seed_demo(self, *, organization: Any, owner: Any) -> dict[str, int]:
        """Demo schedules for ``seed_demo`` (only when there is an owner and none exist yet)."""
        from scheduling.demo import schedules_seed

        return {"schedules": schedules_seed(organization=organization, owner=owner)} if owner else {}
