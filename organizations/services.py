"""Writes for organizations and memberships."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import DomainNameValidator
from django.db import transaction
from django.db.models import QuerySet

from audit.services import audit_record
from config.errors import ApplicationError
from organizations.models import (
    DeliveryPolicy,
    LinkAccess,
    Membership,
    Organization,
    Role,
    pseudonym_key_new,
    validate_timezone,
)


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


# --- organization settings, members and the pseudonym key (admin role) ---------------------

#: Organization fields an admin may change through ``organization_update``.
ORGANIZATION_EDITABLE = ("timezone", "allowed_recipient_domains", "delivery_policy", "link_access")
#: The settings that take one of a fixed set of values, with those values.
_ORGANIZATION_CHOICES: dict[str, type[DeliveryPolicy] | type[LinkAccess]] = {
    "delivery_policy": DeliveryPolicy,
    "link_access": LinkAccess,
}
MAX_RECIPIENT_DOMAINS = 100
_domain_validator = DomainNameValidator()


def recipient_domains_clean(value: Any) -> list[str]:
    """A list of bare domain names (``acme.com``): trimmed, lower-cased, ``@`` dropped,
    duplicates removed, order kept; anything else is an error on the field."""
    field = "allowed_recipient_domains"
    if not isinstance(value, list):
        raise ApplicationError('A list of domain names is needed, e.g. ["acme.com"].', field=field)
    if len(value) > MAX_RECIPIENT_DOMAINS:
        raise ApplicationError(f"At most {MAX_RECIPIENT_DOMAINS} domains.", field=field)
    clean: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise ApplicationError(f"{item!r} is not a domain name such as acme.com.", field=field)
        # Recipients are matched on the text after their "@", so store the bare name.
        domain = item.strip().lower().removeprefix("@").removesuffix(".")
        try:
            _domain_validator(domain)
        except ValidationError:
            raise ApplicationError(f"{item!r} is not a domain name such as acme.com.", field=field) from None
        if domain not in clean:
            clean.append(domain)
    return clean


def _organization_clean(data: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - set(ORGANIZATION_EDITABLE))
    if unknown:
        message = f"Cannot be changed here: use {', '.join(ORGANIZATION_EDITABLE)}."
        raise ApplicationError(message, field=unknown[0], extra={name: [message] for name in unknown[1:]})
    clean: dict[str, Any] = {}
    if "timezone" in data:
        tz = data["timezone"]
        if not isinstance(tz, str):
            raise ApplicationError("An IANA time zone such as Europe/London is needed.", field="timezone")
        try:
            validate_timezone(tz)
        except ValidationError as exc:
            raise ApplicationError(exc.messages[0], field="timezone") from None
        clean["timezone"] = tz
    if "allowed_recipient_domains" in data:
        clean["allowed_recipient_domains"] = recipient_domains_clean(data["allowed_recipient_domains"])
    for name, choices in _ORGANIZATION_CHOICES.items():
        if name in data:
            if data[name] not in choices.values:
                raise ApplicationError(f"{data[name]!r} is not one of {', '.join(choices.values)}.", field=name)
            clean[name] = str(data[name])
    return clean


def _fields_change(obj: Any, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Set and save the fields of ``obj`` whose value differs (None: left as it is);
    returns ``{field: {"before", "after"}}`` of what changed, for the audit event."""
    changed = {
        name: {"before": getattr(obj, name), "after": value}
        for name, value in values.items()
        if value is not None and getattr(obj, name) != value
    }
    for name, change in changed.items():
        setattr(obj, name, change["after"])
    if changed:
        obj.save(update_fields=list(changed))
    return changed


@transaction.atomic
def organization_update(
    *, organization: Organization, data: dict[str, Any], actor: Any = None, ip_address: str | None = None
) -> Organization:
    """Change the organization's settings (``timezone``, ``allowed_recipient_domains``,
    ``delivery_policy``, ``link_access``); audited ``organization.updated`` with before and
    after of the fields that changed."""
    clean = _organization_clean(data)
    org = Organization.objects.select_for_update().get(pk=organization.pk)
    changed = _fields_change(org, clean)
    if changed:
        audit_record(
            organization_id=org.pk,
            action="organization.updated",
            actor=actor,
            target=org,
            details={"changed": changed},
            ip_address=ip_address,
        )
    return org


def membership_update_validate(*, membership: Membership, role: Any = None, identity_access: Any = None) -> None:
    """Check a change of role and/or identity access; the last admin of an organization
    keeps the admin role, so that someone can always manage its members."""
    if identity_access is not None and not isinstance(identity_access, bool):
        raise ApplicationError("identity_access must be true or false.", field="identity_access")
    if role is None:
        return
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}: use one of {', '.join(Role.values)}.", field="role")
    if membership.role == Role.ADMIN and role != Role.ADMIN and not _other_admins(membership).exists():
        raise ApplicationError(
            f"{membership.user.get_username()} is the last admin of {membership.organization}: "
            "make another member admin first.",
            field="role",
        )


def _other_admins(membership: Membership) -> QuerySet[Membership]:
    return Membership.objects.filter(organization_id=membership.organization_id, role=Role.ADMIN).exclude(
        pk=membership.pk
    )


@transaction.atomic
def membership_update(
    *,
    membership: Membership,
    role: str | None = None,
    identity_access: bool | None = None,
    actor: Any = None,
    ip_address: str | None = None,
) -> Membership:
    """Change a member's role and/or identity access (None leaves it as it is); audited
    ``membership.updated`` with the username and before/after of what changed."""
    # Lock the organization so that two admins demoting each other at once queue up and
    # the second one finds that it would remove the last admin.
    Organization.objects.select_for_update().get(pk=membership.organization_id)
    current = Membership.objects.select_related("user", "organization").get(pk=membership.pk)
    membership_update_validate(membership=current, role=role, identity_access=identity_access)
    wanted = {"role": role, "identity_access": identity_access}
    changed = _fields_change(current, wanted)
    if changed:
        audit_record(
            organization_id=current.organization_id,
            action="membership.updated",
            actor=actor,
            target=current,
            details={"username": current.user.get_username(), "changed": changed},
            ip_address=ip_address,
        )
    return current


@transaction.atomic
def pseudonym_key_rotate(*, organization: Organization, actor: Any = None, ip_address: str | None = None) -> None:
    """Give the organization a new random pseudonym key; audited
    ``organization.pseudonym_key_rotated``.

    Pseudonyms in exports made from now on differ from those in earlier files: the same
    person can no longer be matched across the rotation. The key itself never leaves the
    database (not in the audit event, logs or responses).
    """
    org = Organization.objects.select_for_update().get(pk=organization.pk)
    org.pseudonym_key = pseudonym_key_new()
    org.save(update_fields=["pseudonym_key"])
    audit_record(
        organization_id=org.pk,
        action="organization.pseudonym_key_rotated",
        actor=actor,
        target=org,
        details={},
        ip_address=ip_address,
    )
    organization.pseudonym_key = org.pseudonym_key
