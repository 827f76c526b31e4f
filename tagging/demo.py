"""Demo tag slots that match the custom fields ``seed_demo`` writes."""

from __future__ import annotations

from django.db import transaction

from organizations.models import Organization
from tagging.models import TagSlot
from tagging.services import tag_slot_put

DEMO_SLOTS = [
    (1, "Region", "case", "custom_fields.hr.region", "text"),
    (2, "Employee grade", "case", "custom_fields.hr.employee_grade", "text"),
    (3, "Loss amount", "case", "custom_fields.financial.amount", "number"),
    (4, "Legal hold", "case", "custom_fields.legal.hold", "boolean"),
    (5, "Case tags", "case", "custom_fields.tags", "list"),
    (6, "Reporter relationship", "riu", "reporter_relationship", "text"),
    (7, "Interviews held", "investigation", "custom_fields.interviews", "number"),
]


@transaction.atomic
def tag_slots_seed(*, organization: Organization) -> int:
    """Configure the demo slots when the organization has none yet; returns how many."""
    if TagSlot.objects.filter(organization=organization).exists():
        return 0
    for slot, label, entity, path, data_type in DEMO_SLOTS:
        tag_slot_put(
            organization=organization,
            slot=slot,
            data={"label": label, "source_entity": entity, "field_path": path, "data_type": data_type},
        )
    return len(DEMO_SLOTS)
