from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class TaggingConfig(AppConfig):
    name = "tagging"
    verbose_name = "Tag slots"

    def seed_demo(self, *, organization: Any, owner: Any) -> dict[str, int]:
        """Demo tag slots for ``seed_demo`` (only into an organization that has none)."""
        from tagging.demo import tag_slots_seed

        return {"tag slots": tag_slots_seed(organization=organization)}
