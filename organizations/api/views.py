"""Health, the caller's organizations, and an organization's settings and members (admins)."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import client_ip
from organizations.api.permissions import OrgScopedMixin
from organizations.api.serializers import (
    MemberSerializer,
    MemberUpdateSerializer,
    OrganizationDetailSerializer,
    OrganizationMembershipSerializer,
    OrganizationUpdateSerializer,
)
from organizations.models import Membership, Organization, Role
from organizations.selectors import member_get, members_for_organization, memberships_for_user
from organizations.services import membership_update, organization_update, pseudonym_key_rotate

logger = logging.getLogger(__name__)


def _check_database() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.exception("health: database check failed")
        return False


def _check_broker() -> bool:
    try:
        from django_q.brokers import get_broker

        return bool(get_broker().ping())
    except Exception:
        logger.exception("health: broker check failed")
        return False


class HealthView(APIView):
    """Liveness of the web process, its database and its task broker (no auth)."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        responses=inline_serializer(
            "Health",
            {
                "status": serializers.CharField(),
                "database": serializers.CharField(),
                "broker": serializers.CharField(),
            },
        )
    )
    def get(self, request: Request) -> Response:
        checks = {"database": _check_database(), "broker": _check_broker()}
        body = {"status": "ok" if all(checks.values()) else "error"}
        body.update({name: "ok" if passed else "error" for name, passed in checks.items()})
        return Response(body, status=200 if all(checks.values()) else 503)


class OrganizationListView(generics.ListAPIView[Membership]):
    """Organizations the caller belongs to, with the caller's role."""

    serializer_class = OrganizationMembershipSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return memberships_for_user(user=self.request.user)


class OrganizationDetailView(OrgScopedMixin, APIView):
    """One organization of the caller, with the caller's role; admins change its settings."""

    write_role = Role.ADMIN

    def _body(self, organization: Organization) -> dict[str, object]:
        o = organization
        return {
            "slug": o.slug,
            "name": o.name,
            "timezone": o.timezone,
            "allowed_recipient_domains": o.allowed_recipient_domains,
            "delivery_policy": o.delivery_policy,
            "link_access": o.link_access,
            "role": self.role,
        }

    @extend_schema(responses=OrganizationDetailSerializer)
    def get(self, request: Request, org: str) -> Response:
        return Response(self._body(self.organization))

    @extend_schema(request=OrganizationUpdateSerializer, responses=OrganizationDetailSerializer)
    def patch(self, request: Request, org: str) -> Response:
        serializer = OrganizationUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = organization_update(
            organization=self.organization,
            data=serializer.validated_data,
            actor=request.user,
            ip_address=client_ip(request),
        )
        return Response(self._body(organization))


class MemberListView(OrgScopedMixin, generics.ListAPIView[Membership]):
    """The organization's members with their roles and identity access (admins)."""

    read_role = Role.ADMIN
    serializer_class = MemberSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return members_for_organization(organization=self.organization)


class MemberDetailView(OrgScopedMixin, APIView):
    """Change a member's role and/or identity access (admins)."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(request=MemberUpdateSerializer, responses=MemberSerializer)
    def patch(self, request: Request, org: str, username: str) -> Response:
        membership = member_get(organization=self.organization, username=username)
        if membership is None:
            raise Http404(f"{username} is not a member of {self.organization.slug}.")
        serializer = MemberUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = membership_update(
            membership=membership, **serializer.validated_data, actor=request.user, ip_address=client_ip(request)
        )
        return Response(MemberSerializer(membership).data)


class PseudonymKeyRotateView(OrgScopedMixin, APIView):
    """Replace the organization's pseudonym key (admins): pseudonyms in new exports differ
    from those in earlier files."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(request=None, responses={status.HTTP_204_NO_CONTENT: None})
    def post(self, request: Request, org: str) -> Response:
        pseudonym_key_rotate(organization=self.organization, actor=request.user, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
