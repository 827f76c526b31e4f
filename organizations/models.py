"""Tenants and who belongs to them."""

from __future__ import annotations

import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


def validate_timezone(value: str) -> None:
    """Accept IANA zone names only (``Europe/London``, ``UTC``)."""
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone such as Europe/London.")


def pseudonym_key_new() -> bytes:
    """A fresh 256-bit secret for an organization's pseudonyms."""
    return secrets.token_bytes(32)


class Role(models.TextChoices):
    """What a member may do; each role can do everything the ones below it can."""

    VIEWER = "viewer", "Viewer"
    OFFICER = "officer", "Officer"
    ADMIN = "admin", "Admin"

    @classmethod
    def rank(cls, role: str) -> int:
        """Order of the roles: viewer < officer < admin."""
        return [cls.VIEWER, cls.OFFICER, cls.ADMIN].index(cls(role))

    @classmethod
    def allows(cls, role: str, required: str) -> bool:
        """True when ``role`` is at least ``required``."""
        return cls.rank(role) >= cls.rank(required)


class DeliveryPolicy(models.TextChoices):
    ANY = "any", "Any (plain attachments allowed)"
    PROTECTED = "protected", "Protected (link-only or encrypted delivery only)"


class LinkAccess(models.TextChoices):
    ANYONE_WITH_LINK = "anyone_with_link", "Anyone with the link"
    MEMBERS_ONLY = "members_only", "Members only (sign-in required)"


class Organization(models.Model):
    """A tenant: every case, tag, export and schedule belongs to one."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    allowed_recipient_domains = models.JSONField(
        default=list,
        blank=True,
        help_text='Email domains scheduled reports may be sent to, e.g. ["acme.com"]; empty allows any.',
    )
    delivery_policy = models.CharField(
        max_length=16,
        choices=DeliveryPolicy.choices,
        default=DeliveryPolicy.ANY,
        help_text="protected: scheduled reports leave only as a link or encrypted, never as a plain attachment.",
    )
    link_access = models.CharField(
        max_length=20,
        choices=LinkAccess.choices,
        default=LinkAccess.ANYONE_WITH_LINK,
        help_text="members_only: emailed download links ask for a sign-in and serve only this organization's members.",
    )
    pseudonym_key = models.BinaryField(
        max_length=32,
        default=pseudonym_key_new,
        editable=False,
        help_text="The secret behind the organization's pseudonyms (HMAC-SHA256 key); never shown.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        """The organization's zone, for periods and dates in files."""
        return zoneinfo.ZoneInfo(self.timezone)


class Membership(models.Model):
    """A user's role in one organization."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    identity_access = models.BooleanField(
        default=False,
        help_text="May see the people in cases (reporters, subjects, witnesses) and export their identities "
        "for a stated reason. Granted by an organization admin; audited.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_unique_user_org"),
            models.CheckConstraint(condition=models.Q(role__in=[r.value for r in Role]), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.organization} ({self.role})"
