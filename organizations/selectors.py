"""Reads about organizations and memberships."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from organizations.models import Membership, Organization, Role


def organizations_for_user(*, user: Any, min_role: str = Role.VIEWER) -> QuerySet[Organization]:
    """Organizations the user may see (all of them for a superuser)."""
    if not user.is_authenticated:
        return Organization.objects.none()
    if user.is_superuser:
        return Organization.objects.all()
    roles = [r for r in Role if Role.allows(r, min_role)]
    return Organization.objects.filter(memberships__user=user, memberships__role__in=roles).distinct()


def role_for_user(*, user: Any, organization: Organization) -> str | None:
    """The user's role in the organization; superusers act as admins everywhere."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.ADMIN
    return Membership.objects.filter(user=user, organization=organization).values_list("role", flat=True).first()


def memberships_for_user(*, user: Any) -> QuerySet[Membership]:
    """The user's memberships with their organizations."""
    return Membership.objects.filter(user=user).select_related("organization").order_by("organization__name")


def identity_access_for(*, user: Any, organization: Organization) -> bool:
    """Whether the user may see and export the identities of people in the organization's
    cases (superusers may)."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    return Membership.objects.filter(user=user, organization=organization, identity_access=True).exists()


def members_for_organization(*, organization: Organization) -> QuerySet[Membership]:
    """The organization's memberships with their users, by username."""
    return Membership.objects.filter(organization=organization).select_related("user").order_by("user__username")


def member_get(*, organization: Organization, username: str) -> Membership | None:
    """The membership of the user called ``username`` in the organization, if any."""
    return members_for_organization(organization=organization).filter(user__username=username).first()
