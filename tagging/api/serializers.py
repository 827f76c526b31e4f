"""API bodies for tag slots."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from tagging.models import MAX_SLOTS, DataType, Sensitivity, SourceEntity, TagSlot
from tagging.paths import FieldPathError, parse_field_path


class TagSlotSerializer(serializers.ModelSerializer[TagSlot]):
    """``{slot, label, source_entity, field_path, data_type, sensitivity, is_active, updated_at}``."""

    slot = serializers.IntegerField(read_only=True)
    label = serializers.CharField(max_length=100, allow_blank=False, trim_whitespace=True)  # type: ignore[assignment]
    source_entity = serializers.ChoiceField(choices=SourceEntity.choices, default=SourceEntity.CASE)
    data_type = serializers.ChoiceField(choices=DataType.choices, default=DataType.TEXT)
    sensitivity = serializers.ChoiceField(
        choices=Sensitivity.choices,
        default=Sensitivity.STANDARD,
        help_text="identity: the value names or identifies a person; exports and previews show pseudonyms.",
    )
    is_active = serializers.BooleanField(default=True)

    class Meta:
        model = TagSlot
        fields = ["slot", "label", "source_entity", "field_path", "data_type", "sensitivity", "is_active", "updated_at"]
        read_only_fields = ["slot", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        entity = attrs.get("source_entity", getattr(self.instance, "source_entity", SourceEntity.CASE))
        path = attrs.get("field_path", getattr(self.instance, "field_path", ""))
        if "field_path" in attrs or "source_entity" in attrs:
            try:
                attrs["field_path"] = parse_field_path(entity, path).path
            except FieldPathError as exc:
                raise serializers.ValidationError({"field_path": [str(exc)]}) from exc
        return attrs


class TagPreviewRequestSerializer(serializers.Serializer[Any]):
    source_entity = serializers.ChoiceField(choices=SourceEntity.choices)
    field_path = serializers.CharField(allow_blank=True)
    data_type = serializers.ChoiceField(choices=DataType.choices, default=DataType.TEXT)
    sensitivity = serializers.ChoiceField(
        choices=Sensitivity.choices,
        default=Sensitivity.STANDARD,
        help_text="identity: show pseudonyms to members without identity access. A path that an identity "
        "slot of the organization reads is treated as identity whatever this says.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            attrs["field_path"] = parse_field_path(attrs["source_entity"], attrs["field_path"]).path
        except FieldPathError as exc:
            raise serializers.ValidationError({"field_path": [str(exc)]}) from exc
        return attrs


class TagPreviewValueSerializer(serializers.Serializer[Any]):
    case_reference = serializers.CharField()
    value = serializers.CharField()


class TagPreviewSerializer(serializers.Serializer[Any]):
    values = TagPreviewValueSerializer(many=True)
    coverage = serializers.FloatField(help_text="Share of the sampled recent cases that have a value, 0..1.")
    sampled = serializers.IntegerField()


class DiscoveredFieldSerializer(serializers.Serializer[Any]):
    field_path = serializers.CharField()
    kind = serializers.ChoiceField(choices=["core", "custom"])
    coverage = serializers.FloatField()
    example = serializers.CharField()
    suggested_data_type = serializers.CharField()


SLOT_RANGE_MESSAGE = f"Slot must be between 1 and {MAX_SLOTS}."
