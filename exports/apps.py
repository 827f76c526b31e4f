from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"
    verbose_name = "Exports"

    def ready(self) -> None:
        # A django-q2 worker told to stop (SIGTERM) hands its export back between chunks.
        from django_q.signals import post_execute_in_worker, post_spawn, pre_execute

        from config.worker import worker_signals_install, worker_task_finished, worker_task_started

        post_spawn.connect(worker_signals_install, dispatch_uid="config.worker_signals_install")
        pre_execute.connect(worker_task_started, dispatch_uid="config.worker_task_started")
        post_execute_in_worker.connect(worker_task_finished, dispatch_uid="config.worker_task_finished")

        # Exports add "Export selected cases" to the case list; cases do not know exports.
        from django.contrib import admin

        from cases.models import Case
        from exports.admin import export_selected_cases

        case_admin = admin.site._registry.get(Case)
        if case_admin is not None and export_selected_cases not in (case_admin.actions or []):
            case_admin.actions = [*(case_admin.actions or []), export_selected_cases]

    def seed_demo(self, *, organization: Any, owner: Any) -> dict[str, int]:
        """The seeded parties' pseudonyms, made ahead (``seed_demo``'s hook)."""
        from django.db import connection

        from exports.party_pseudonyms import party_pseudonyms_refresh

        made = party_pseudonyms_refresh(organization_id=organization.pk)
        if made and connection.vendor == "postgresql" and not connection.in_atomic_block:
            # Every party row was written again: the table rewritten compact (as a live
            # system's, whose rows get their pseudonyms as they come), fresh statistics.
            with connection.cursor() as cursor:
                cursor.execute("VACUUM (FULL, ANALYZE) cases_party")
        return {"party pseudonyms": made} if made else {}
