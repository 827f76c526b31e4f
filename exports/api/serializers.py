"""API bodies for export jobs and the column catalog."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from exports.columns_base import Sensitivity
from exports.models import ExportJob


class ExportColumnsSchema(serializers.Serializer[Any]):
    """``columns`` of an export (documentation: the service validates the JSON)."""

    include_investigations = serializers.BooleanField(default=True)
    max_investigations = serializers.IntegerField(default=3, min_value=0, max_value=10)
    include_overflow = serializers.BooleanField(default=False)
    include_tags = serializers.BooleanField(default=True)
    core = serializers.ListField(child=serializers.CharField(), allow_null=True, default=None)
    identity = serializers.ChoiceField(
        choices=["pseudonymise", "include", "omit"],
        default="pseudonymise",
        help_text="Columns that identify a person (sensitivity identity): pseudonyms (PSN- and 10 hex "
        "characters, stable within the organization), the real values (403 without identity access; "
        "audited export.identity_included), or left out.",
    )
    identity_reason = serializers.CharField(
        required=False,
        max_length=500,
        help_text='Why identities are revealed: 1–500 characters, needed with "include".',
    )


@extend_schema_field(ExportColumnsSchema)
class ExportColumnsField(serializers.JSONField):
    """The ``columns`` JSON, documented by ``ExportColumnsSchema``."""


class ExportJobCreateSerializer(serializers.Serializer[Any]):
    """The request: shapes only; the service validates meaning (400 with field keys)."""

    dataset = serializers.CharField(default="cases")
    format = serializers.CharField()
    filters = serializers.JSONField(required=False, default=dict)
    columns = ExportColumnsField(required=False, default=dict)


class ExportJobSerializer(serializers.ModelSerializer[ExportJob]):
    """The job body of the contract."""

    progress = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    requested_by = serializers.SerializerMethodField()
    sha256 = serializers.SerializerMethodField()
    file_name = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "dataset",
            "format",
            "status",
            "progress",
            "row_count",
            "file_size_bytes",
            "sha256",
            "file_name",
            "download_url",
            "expires_at",
            "error",
            "filters",
            "columns",
            "tag_snapshot",
            "requested_by",
            "source",
            "created_at",
            "started_at",
            "completed_at",
        ]

    def get_progress(self, job: ExportJob) -> dict[str, Any]:
        return {"rows_done": job.rows_done, "rows_total": job.rows_total, "percent": job.percent}

    def get_download_url(self, job: ExportJob) -> str | None:
        if job.status != "completed":
            return None
        path = reverse("export-download", kwargs={"org": job.organization.slug, "pk": job.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_error(self, job: ExportJob) -> str | None:
        return job.error or None

    def get_requested_by(self, job: ExportJob) -> str | None:
        return job.requested_by.get_username() if job.requested_by else None

    def get_sha256(self, job: ExportJob) -> str | None:
        return job.sha256 or None

    def get_file_name(self, job: ExportJob) -> str | None:
        return job.file_name or None


class ColumnSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    type = serializers.CharField()
    group = serializers.ChoiceField(choices=["core", "investigation", "tag"])
    sensitivity = serializers.ChoiceField(
        choices=Sensitivity.choices,
        help_text="identity: the column names or identifies a person; exports pseudonymise it unless "
        'columns.identity is "include" (identity access and a reason needed) or leave it out with "omit".',
    )
