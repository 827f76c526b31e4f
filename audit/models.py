"""The append-only, tamper-evident audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One recorded action, chained to the previous event of its organization by hash.

    ``hash`` = SHA-256(previous event's hash + canonical JSON of this event), so editing,
    deleting or reordering any event breaks every hash after it. Written only through
    ``audit.services.audit_record``.
    """

    organization = models.ForeignKey(
        "organizations.Organization", on_delete=models.PROTECT, related_name="audit_events"
    )
    sequence = models.PositiveBigIntegerField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    actor_label = models.CharField(max_length=150, help_text="Username at the time, or 'system'.")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["organization_id", "-sequence"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "sequence"], name="audit_unique_org_sequence"),
        ]
        indexes = [models.Index(fields=["organization", "created_at"], name="audit_org_created_idx")]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} by {self.actor_label}"


class AuditChainHead(models.Model):
    """The last sequence and hash of each organization's chain.

    It is the row locked to serialise inserts per organization, and it lets
    ``verify_audit`` notice a deleted *last* event, which a chain alone cannot show.
    """

    organization = models.OneToOneField(
        "organizations.Organization", on_delete=models.PROTECT, primary_key=True, related_name="audit_head"
    )
    sequence = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"{self.organization_id}: #{self.sequence}"
