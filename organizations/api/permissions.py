"""The organization scoping every API view under ``/api/v1/orgs/{org}/`` goes through."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions
from rest_framework.request import Request

from organizations.models import Organization, Role
from organizations.selectors import role_for_user


class OrgScopedMixin:
    """Resolves ``self.organization`` and ``self.role`` from the URL's ``org`` slug.

    Not a member (or no such organization) → 404, so existence is not revealed; a member
    whose role is below what the HTTP method needs → 403. Subclasses set ``read_role``
    and ``write_role`` or override ``required_role``.
    """

    read_role: str = Role.VIEWER
    write_role: str = Role.OFFICER
    organization: Organization
    role: str
    kwargs: dict[str, Any]

    def required_role(self, request: Request) -> str:
        return self.read_role if request.method in ("GET", "HEAD", "OPTIONS") else self.write_role

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self.organization, self.role = org_and_role(request, self.kwargs.get("org", ""))
        if not Role.allows(self.role, self.required_role(request)):
            raise exceptions.PermissionDenied(
                f"Your role in {self.organization.slug} is {self.role}; this needs {self.required_role(request)}."
            )


def org_and_role(request: Request, slug: str) -> tuple[Organization, str]:
    """The organization named by ``slug`` and the user's role in it, or 404."""
    org = Organization.objects.filter(slug=slug).first()
    role = role_for_user(user=request.user, organization=org) if org else None
    if org is None or role is None:
        raise Http404("No such organization.")
    return org, role
