"""``ops_status``: one JSON document about the queue, the exports and the workers."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from ops.selectors import ops_status_read


class Command(BaseCommand):
    help = (
        "Print the task queue depth, pending/processing exports per organization, the oldest "
        "pending export's age, failures in the last 24 hours and the workers seen in the last minute, as JSON."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(json.dumps(ops_status_read(), indent=2))
