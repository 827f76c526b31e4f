"""Tag slots: custom fields promoted by an organization admin to named export columns."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower

from tagging.formatting import Sensitivity

MAX_SLOTS = 20


class SourceEntity(models.TextChoices):
    CASE = "case", "Case"
    RIU = "riu", "RIU (the case's primary intake report)"
    INVESTIGATION = "investigation", "Investigation (the case's latest)"


class DataType(models.TextChoices):
    TEXT = "text", "Text"
    NUMBER = "number", "Number"
    DATE = "date", "Date"
    DATETIME = "datetime", "Date and time"
    BOOLEAN = "boolean", "Yes/No"
    LIST = "list", "List"


class TagSlot(models.Model):
    """Slot 1..20 of an organization: where a value lives, its column label and type."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.CASCADE, related_name="tag_slots")
    slot = models.PositiveSmallIntegerField(help_text=f"1 to {MAX_SLOTS}; columns appear in slot order.")
    label = models.CharField(max_length=100, help_text="The column header in every export.")
    source_entity = models.CharField(max_length=16, choices=SourceEntity.choices, default=SourceEntity.CASE)
    field_path = models.CharField(
        max_length=200, help_text="A field of the entity (business_unit) or custom_fields.key.subkey"
    )
    data_type = models.CharField(max_length=16, choices=DataType.choices, default=DataType.TEXT)
    sensitivity = models.CharField(
        max_length=16,
        choices=Sensitivity.choices,
        default=Sensitivity.STANDARD,
        help_text="identity: the value names or identifies a person (a reporter's phone, a subject's email); "
        "exports show a pseudonym unless identities are included, and previews show one to members without "
        "identity access. standard: any other value.",
    )
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization_id", "slot"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slot"], name="tagslot_unique_slot"),
            models.UniqueConstraint(
                Lower("label"),
                "organization",
                name="tagslot_unique_label",
                violation_error_message="Another slot of this organization already uses this label.",
            ),
            models.CheckConstraint(
                condition=models.Q(slot__gte=1, slot__lte=MAX_SLOTS),
                name="tagslot_slot_range",
                violation_error_message=f"Slot must be between 1 and {MAX_SLOTS}.",
            ),
            models.CheckConstraint(
                condition=models.Q(source_entity__in=SourceEntity.values), name="tagslot_source_entity_valid"
            ),
            models.CheckConstraint(condition=models.Q(data_type__in=DataType.values), name="tagslot_data_type_valid"),
            models.CheckConstraint(
                condition=models.Q(sensitivity__in=Sensitivity.values), name="tagslot_sensitivity_valid"
            ),
            models.CheckConstraint(condition=~models.Q(label=""), name="tagslot_label_not_empty"),
        ]

    def __str__(self) -> str:
        return f"Slot {self.slot}: {self.label}"

    def clean(self) -> None:
        from tagging.paths import FieldPathError, parse_field_path

        if self.slot is not None and not 1 <= self.slot <= MAX_SLOTS:
            raise ValidationError({"slot": f"Slot must be between 1 and {MAX_SLOTS}."})
        self.label = (self.label or "").strip()
        if not self.label:
            raise ValidationError({"label": "A label is needed: it is the column header."})
        clash = TagSlot.objects.filter(organization_id=self.organization_id, label__iexact=self.label)
        if clash.exclude(pk=self.pk).exists():
            raise ValidationError({"label": f"Another slot of this organization is already labelled {self.label!r}."})
        if self.source_entity in SourceEntity.values:
            try:
                self.field_path = parse_field_path(self.source_entity, self.field_path).path
            except FieldPathError as exc:
                raise ValidationError({"field_path": str(exc)}) from exc

    def snapshot(self) -> dict[str, object]:
        """The slot as frozen into an export job."""
        return {
            "slot": self.slot,
            "label": self.label,
            "source_entity": self.source_entity,
            "field_path": self.field_path,
            "data_type": self.data_type,
            "sensitivity": self.sensitivity,
        }
