from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Each django-q2 worker process reports itself alive (ops_status's workers figure).
        from django_q.signals import post_spawn

        from ops.heartbeat import worker_heartbeat_start

        post_spawn.connect(worker_heartbeat_start, dispatch_uid="ops.worker_heartbeat_start")
