"""Scheduled reports: what to export, when (in its own timezone), and to whom; each run
and each delivery recorded."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class DeliveryMethod(models.TextChoices):
    EMAIL = "email", "Email"
    STORAGE = "storage", "Storage"
    EMAIL_AND_STORAGE = "email_and_storage", "Email and storage"


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    PARTIAL = "partial", "Partial"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


RUN_FINISHED = (RunStatus.SUCCESS, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.SKIPPED)


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Manual"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class DeliveryKind(models.TextChoices):
    EMAIL = "email", "Email"
    STORAGE = "storage", "Storage"


class Protection(models.TextChoices):
    """How a scheduled report's file leaves: as it is, only as a link, or encrypted."""

    NONE = "none", "None (the file attached as it is)"
    LINK_ONLY = "link_only", "Link only (no attachment)"
    ENCRYPTED_ZIP = "encrypted_zip", "Encrypted ZIP (AES-256, agreed passphrase)"
    SMIME = "smime", "S/MIME (encrypted to each recipient's certificate)"


class ReportSchedule(models.Model):
    """A recurring export: its definition, its rule on a local wall clock, its delivery."""

    organization = models.ForeignKey(
        "organizations.Organization", on_delete=models.CASCADE, related_name="report_schedules"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="report_schedules",
        help_text="The schedule runs with this user's access.",
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    dataset = models.CharField(max_length=20, default="cases")
    format = models.CharField(max_length=10, default="xlsx")
    filters = models.JSONField(default=dict, blank=True, help_text="Unresolved: periods resolve per run.")
    columns = models.JSONField(default=dict, blank=True)
    schedule = models.JSONField(help_text='e.g. {"kind": "monthly", "time": "08:00", "day_of_month": "last"}')
    timezone = models.CharField(max_length=64, default="UTC")
    delivery_method = models.CharField(max_length=20, choices=DeliveryMethod.choices, default=DeliveryMethod.EMAIL)
    recipients = models.JSONField(default=list, blank=True)
    attach_file = models.BooleanField(default=True)
    protection = models.CharField(
        max_length=16,
        choices=Protection.choices,
        default=Protection.NONE,
        help_text="How the emailed file is protected.",
    )
    passphrase_encrypted = models.TextField(
        blank=True, editable=False, help_text="The encrypted ZIP's passphrase, encrypted at rest; never shown."
    )
    protection_notice_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the owner was told a policy changed its delivery."
    )
    storage_path = models.CharField(max_length=300, blank=True)
    skip_if_empty = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    paused_reason = models.CharField(max_length=300, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_status = models.CharField(max_length=10, choices=RunStatus.choices, blank=True)
    consecutive_failures = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization_id", "name"]
        indexes = [models.Index(fields=["is_active", "next_run_at"], name="schedule_due_idx")]

    def __str__(self) -> str:
        return self.name


class ScheduleRun(models.Model):
    """One run of a schedule: at most one per scheduled slot, whatever the number of workers."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    schedule = models.ForeignKey(ReportSchedule, on_delete=models.CASCADE, related_name="runs")
    scheduled_for = models.DateTimeField()
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices, default=RunTrigger.SCHEDULE)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    export_job = models.ForeignKey(
        "exports.ExportJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="schedule_runs"
    )
    row_count = models.PositiveIntegerField(null=True, blank=True)
    file_size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    missed_slots = models.PositiveIntegerField(default=0, help_text="Earlier missed slots this run stands for.")
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recipients_override = models.JSONField(null=True, blank=True, help_text="A test run's own recipients.")
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    owner_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-scheduled_for", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "scheduled_for"], condition=models.Q(trigger="schedule"), name="run_once_per_slot"
            ),
        ]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="run_status_lease_idx")]

    def __str__(self) -> str:
        return f"{self.schedule} @ {self.scheduled_for:%Y-%m-%d %H:%M} ({self.status})"


class Delivery(models.Model):
    """Sending one run's report to one recipient (or storage target); never sent twice."""

    run = models.ForeignKey(ScheduleRun, on_delete=models.CASCADE, related_name="deliveries")
    kind = models.CharField(max_length=10, choices=DeliveryKind.choices, default=DeliveryKind.EMAIL)
    recipient = models.CharField(max_length=320, help_text="An email address, or the storage path.")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=300, blank=True, help_text="Email Message-ID, or the stored file key.")
    attached = models.BooleanField(default=False)
    protection = models.CharField(max_length=16, choices=Protection.choices, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of exactly the bytes attached.")
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["run_id", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "recipient"], name="delivery_once_per_recipient")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.recipient}: {self.status}"


class RecipientCertificate(models.Model):
    """A recipient's X.509 certificate: S/MIME reports to that address are encrypted to it."""

    organization = models.ForeignKey(
        "organizations.Organization", on_delete=models.CASCADE, related_name="recipient_certificates"
    )
    email = models.EmailField(help_text="The address in the certificate (lower case).")
    pem = models.TextField()
    fingerprint_sha256 = models.CharField(max_length=64)
    subject = models.CharField(max_length=500, blank=True)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expiry_notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When owners were told it expires soon (once)."
    )

    class Meta:
        ordering = ["organization_id", "email", "-not_after"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "fingerprint_sha256"], name="certificate_unique_per_org"),
        ]
        indexes = [models.Index(fields=["organization", "email"], name="certificate_org_email_idx")]

    def __str__(self) -> str:
        return f"{self.email} (until {self.not_after:%Y-%m-%d})"
