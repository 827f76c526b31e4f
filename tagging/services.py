"""Writes for tag slots; every change is audited with before and after."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from audit.services import audit_record
from organizations.models import Organization
from tagging.models import MAX_SLOTS, DataType, Sensitivity, SourceEntity, TagSlot

EDITABLE = ("label", "source_entity", "field_path", "data_type", "sensitivity", "is_active")


def _check_slot(slot: int) -> None:
    if not 1 <= slot <= MAX_SLOTS:
        raise ValidationError({"slot": f"Slot must be between 1 and {MAX_SLOTS}, not {slot}."})


def _save(tag: TagSlot) -> None:
    # full_clean runs the field-path grammar and the unique/check constraints, so a bad
    # value is a field-keyed ValidationError (400), never an IntegrityError (500).
    tag.full_clean()
    tag.save()


@transaction.atomic
def tag_slot_put(
    *, organization: Organization, slot: int, data: dict[str, Any], actor: Any = None, ip_address: str | None = None
) -> tuple[TagSlot, bool]:
    """Create or replace slot ``slot``: fields not given go back to their defaults."""
    _check_slot(slot)
    tag = TagSlot.objects.select_for_update().filter(organization=organization, slot=slot).first()
    created = tag is None
    before = tag.snapshot() | {"is_active": tag.is_active} if tag else None
    if tag is None:
        tag = TagSlot(organization=organization, slot=slot, created_by=actor if _is_user(actor) else None)
    defaults = {
        "label": "",
        "source_entity": SourceEntity.CASE,
        "field_path": "",
        "data_type": DataType.TEXT,
        "sensitivity": Sensitivity.STANDARD,
        "is_active": True,
    }
    for name in EDITABLE:
        setattr(tag, name, data.get(name, defaults[name]))
    tag.updated_by = actor if _is_user(actor) else None
    _save(tag)
    _audit(tag, "tag.created" if created else "tag.updated", before, actor, ip_address)
    return tag, created


@transaction.atomic
def tag_slot_patch(*, tag: TagSlot, data: dict[str, Any], actor: Any = None, ip_address: str | None = None) -> TagSlot:
    """Change some fields of a configured slot."""
    tag = TagSlot.objects.select_for_update().get(pk=tag.pk)
    before = tag.snapshot() | {"is_active": tag.is_active}
    for name in EDITABLE:
        if name in data:
            setattr(tag, name, data[name])
    tag.updated_by = actor if _is_user(actor) else None
    _save(tag)
    _audit(tag, "tag.updated", before, actor, ip_address)
    return tag


@transaction.atomic
def tag_slot_clear(*, tag: TagSlot, actor: Any = None, ip_address: str | None = None) -> None:
    """Clear a slot: its column disappears from exports created from now on."""
    before = tag.snapshot() | {"is_active": tag.is_active}
    audit_record(
        organization_id=tag.organization_id,
        action="tag.deleted",
        actor=actor,
        target=tag,
        details={"slot": tag.slot, "before": before, "after": None},
        ip_address=ip_address,
    )
    tag.delete()


def _audit(tag: TagSlot, action: str, before: dict[str, Any] | None, actor: Any, ip: str | None) -> None:
    audit_record(
        organization_id=tag.organization_id,
        action=action,
        actor=actor,
        target=tag,
        ip_address=ip,
        details={"slot": tag.slot, "before": before, "after": tag.snapshot() | {"is_active": tag.is_active}},
    )


def _is_user(actor: Any) -> bool:
    return actor is not None and getattr(actor, "is_authenticated", False)
