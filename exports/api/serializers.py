"""API bodies for export jobs and the column catalog."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from exports.models import ExportJob


class ExportJobCreateSerializer(serializers.Serializer[Any]):
    """The request: shapes only; the service validates meaning (400 with field keys)."""

    dataset = serializers.CharField(default="cases")
    format = serializers.CharField()
    filters = serializers.JSONField(required=False, default=dict)
    columns = serializers.JSONField(required=False, default=dict)


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
        choices=["standard", "identity"],
        help_text="identity: the column names or identifies a person; exports pseudonymise it unless "
        'columns.identity is "include" (identity access and a reason needed) or leave it out with "omit".',
    )
