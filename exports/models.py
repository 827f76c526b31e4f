"""Export jobs: one requested file, its lifecycle, progress and evidence."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class ExportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


TERMINAL_STATUSES = (ExportStatus.COMPLETED, ExportStatus.FAILED, ExportStatus.CANCELLED, ExportStatus.EXPIRED)


class Dataset(models.TextChoices):
    CASES = "cases", "Cases (one row per case)"
    INVESTIGATIONS = "investigations", "Investigations (one row per investigation)"
    BOARD_REPORT = "board_report", "Board report (PDF)"


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    XLSX = "xlsx", "Excel (XLSX)"
    JSONL = "jsonl", "JSON Lines"
    PARQUET = "parquet", "Parquet"
    PDF = "pdf", "PDF"


class ExportSource(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Admin"
    SCHEDULE = "schedule", "Schedule"
    CLI = "cli", "Command line"


class ExportJob(models.Model):
    """A requested export, written by a worker that claims it with a renewable lease."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("organizations.Organization", on_delete=models.CASCADE, related_name="exports")
    dataset = models.CharField(max_length=20, choices=Dataset.choices, default=Dataset.CASES)
    format = models.CharField(max_length=10, choices=ExportFormat.choices)
    status = models.CharField(max_length=12, choices=ExportStatus.choices, default=ExportStatus.PENDING)
    filters = models.JSONField(default=dict, blank=True, help_text="Resolved filters (relative periods as dates).")
    columns = models.JSONField(default=dict, blank=True)
    tag_snapshot = models.JSONField(default=list, blank=True, help_text="Tag slots as they were at creation.")
    source = models.CharField(max_length=10, choices=ExportSource.choices, default=ExportSource.API)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="export_jobs"
    )
    rows_done = models.PositiveIntegerField(default=0)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    row_count = models.PositiveIntegerField(null=True, blank=True)
    file_size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    file_name = models.CharField(max_length=200, blank=True, help_text="The name users download it as.")
    storage_key = models.CharField(max_length=300, blank=True, help_text="Server-generated key in the exports storage.")
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="export_org_created_idx"),
            models.Index(fields=["status", "lease_expires_at"], name="export_status_lease_idx"),
            models.Index(fields=["status", "expires_at"], name="export_status_expiry_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=ExportStatus.values), name="export_status_valid"),
            models.CheckConstraint(
                condition=~models.Q(dataset="board_report") | models.Q(format="pdf"),
                name="export_board_report_is_pdf",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_dataset_display()} · {self.format.upper()} · {self.status}"

    @property
    def percent(self) -> int:
        """Progress in whole percent (100 once completed)."""
        if self.status == ExportStatus.COMPLETED:
            return 100
        if not self.rows_total:
            return 0
        return min(99, int(self.rows_done * 100 / self.rows_total))

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class PartyPseudonymsMade(models.Model):
    """The stamp every party of an organization had when its pseudonyms were last made
    whole (``exports.party_pseudonyms``): where it is not the organization's current stamp
    (a new key, new identity columns), the every-minute sweep makes them
    again, a share at a time."""

    organization = models.OneToOneField(
        "organizations.Organization", on_delete=models.CASCADE, related_name="+", primary_key=True
    )
    stamp = models.CharField(max_length=32)
    made_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "party pseudonyms made"
        verbose_name_plural = "party pseudonyms made"

    def __str__(self) -> str:
        return f"Party pseudonyms of organization {self.organization_id}"
