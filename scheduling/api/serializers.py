"""API bodies for schedules and runs (nested as in the contract, flat in the model)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from scheduling.models import Delivery, Protection, ReportSchedule, ScheduleRun


class ExportDefinitionSerializer(serializers.Serializer[Any]):
    dataset = serializers.CharField(default="cases")
    format = serializers.CharField()
    filters = serializers.JSONField(required=False, default=dict)
    columns = serializers.JSONField(required=False, default=dict)


class DeliverySpecSerializer(serializers.Serializer[Any]):
    method = serializers.CharField(default="email")
    recipients = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    attach_file = serializers.BooleanField(default=True)
    storage_path = serializers.CharField(required=False, allow_blank=True, default="")
    protection = serializers.ChoiceField(
        choices=Protection.choices,
        default=Protection.NONE,
        help_text="none: the file attached as it is; link_only: only the signed link; encrypted_zip: an "
        "AES-256 ZIP opened with the passphrase; smime: each message encrypted to the recipient's certificate.",
    )
    passphrase = serializers.CharField(
        write_only=True,
        required=False,
        trim_whitespace=False,
        help_text="For encrypted_zip: at least 12 characters, agreed with the recipients. Write-only: "
        "bodies show passphrase_set.",
    )
    passphrase_set = serializers.BooleanField(read_only=True)


class ScheduleSerializer(serializers.Serializer[Any]):
    """The schedule body of the contract; ``to_model`` flattens it for the service."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    export = ExportDefinitionSerializer()
    schedule = serializers.JSONField()
    timezone = serializers.CharField(required=False)
    delivery = DeliverySpecSerializer()
    skip_if_empty = serializers.BooleanField(default=False)
    is_active = serializers.BooleanField(default=True)
    next_run_at = serializers.DateTimeField(read_only=True)
    last_run_at = serializers.DateTimeField(read_only=True)
    last_run_status = serializers.CharField(read_only=True, allow_null=True)
    paused_reason = serializers.CharField(read_only=True)
    owner = serializers.CharField(read_only=True, source="owner.username")

    def to_representation(self, instance: ReportSchedule) -> dict[str, Any]:
        return {
            "id": instance.pk,
            "name": instance.name,
            "description": instance.description,
            "export": {
                "dataset": instance.dataset,
                "format": instance.format,
                "filters": instance.filters,
                "columns": instance.columns,
            },
            "schedule": instance.schedule,
            "timezone": instance.timezone,
            "delivery": {
                "method": instance.delivery_method,
                "recipients": instance.recipients,
                "attach_file": instance.attach_file,
                "storage_path": instance.storage_path,
                "protection": instance.protection,
                "passphrase_set": bool(instance.passphrase_encrypted),
            },
            "skip_if_empty": instance.skip_if_empty,
            "is_active": instance.is_active,
            "next_run_at": instance.next_run_at,
            "last_run_at": instance.last_run_at,
            "last_run_status": instance.last_run_status or None,
            "paused_reason": instance.paused_reason,
            "owner": instance.owner.get_username(),
        }

    @staticmethod
    def to_model(data: dict[str, Any]) -> dict[str, Any]:
        """Nested validated data → flat model fields (only the keys that were given)."""
        flat: dict[str, Any] = {
            k: data[k]
            for k in ("name", "description", "schedule", "timezone", "skip_if_empty", "is_active")
            if k in data
        }
        if "export" in data:
            flat.update(
                {k: data["export"][k] for k in ("dataset", "format", "filters", "columns") if k in data["export"]}
            )
        if "delivery" in data:
            delivery = data["delivery"]
            mapping = {
                "method": "delivery_method",
                "recipients": "recipients",
                "attach_file": "attach_file",
                "storage_path": "storage_path",
                "protection": "protection",
                "passphrase": "passphrase",  # in clear only until the service encrypts it
            }
            flat.update({mapping[k]: v for k, v in delivery.items() if k in mapping})
        return flat


class DeliverySerializer(serializers.ModelSerializer[Delivery]):
    error = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = [
            "recipient",
            "kind",
            "status",
            "attempts",
            "sent_at",
            "error",
            "next_attempt_at",
            "attached",
            "protection",
            "sha256",
        ]

    def get_error(self, delivery: Delivery) -> str | None:
        return delivery.last_error or None

    def to_representation(self, delivery: Delivery) -> dict[str, Any]:
        body = super().to_representation(delivery)
        body["protection"] = delivery.protection or None
        body["sha256"] = delivery.sha256 or None  # of exactly the bytes attached; null when none
        return body


class RunSerializer(serializers.ModelSerializer[ScheduleRun]):
    export_id = serializers.UUIDField(source="export_job_id", read_only=True, allow_null=True)
    deliveries = DeliverySerializer(many=True, read_only=True)
    error = serializers.SerializerMethodField()

    class Meta:
        model = ScheduleRun
        fields = [
            "id",
            "scheduled_for",
            "trigger",
            "status",
            "started_at",
            "completed_at",
            "export_id",
            "row_count",
            "file_size_bytes",
            "missed_slots",
            "deliveries",
            "error",
        ]

    def get_error(self, run: ScheduleRun) -> str | None:
        return run.error or None


class PreviewRequestSerializer(serializers.Serializer[Any]):
    schedule = serializers.JSONField()
    timezone = serializers.CharField()
    after = serializers.DateTimeField(required=False)


class RunRequestSerializer(serializers.Serializer[Any]):
    to_me = serializers.BooleanField(default=False, help_text="Send only to the requesting user (a test).")
