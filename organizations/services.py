"""Writes for organizations and memberships."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from audit.services import audit_record
from config.errors import ApplicationError
from organizations.models import Membership, Organization, Role


@transaction.atomic
def organization_get_or_create(*, slug: str, name: str, timezone: str = "UTC") -> tuple[Organization, bool]:
    """The organization with this slug, created with ``name`` and ``timezone`` if missing."""
    org, created = Organization.objects.get_or_create(slug=slug, defaults={"name": name, "timezone": timezone})
    if created:
        audit_record(organization_id=org.pk, action="organization.created", target=org, details={"name": name})
    return org, created


@transaction.atomic
def membership_add(
    *,
    organization: Organization,
    username: str,
    role: str,
    password: str | None = None,
    email: str | None = None,
    actor: Any = None,
) -> tuple[Membership, bool]:
    """Create the user if missing and give them ``role`` in ``organization``.

    An existing user keeps their password (``password`` only applies to a new user) and
    becomes staff so they can sign in to the admin.
    """
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}: use one of {', '.join(Role.values)}.", field="role")
    if not username.strip():
        raise ApplicationError("A username is needed.", field="username")
    User = get_user_model()
    user, user_created = User.objects.get_or_create(username=username, defaults={"email": email or ""})
    changed = []
    if user_created:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        changed.append("password")
    if not user.is_staff:
        user.is_staff = True
        changed.append("is_staff")
    if email and user.email != email:
        user.email = email
        changed.append("email")
    if changed:
        user.save()
    membership, created = Membership.objects.get_or_create(
        user=user, organization=organization, defaults={"role": role}
    )
    before = membership.role
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    if created or before != role:
        audit_record(
            organization_id=organization.pk,
            action="membership.created" if created else "membership.updated",
            actor=actor,
            target=membership,
            details={"username": username, "role": role, "before": None if created else before},
        )
    return membership, created
