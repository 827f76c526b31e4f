"""Health and the caller's organizations."""

from __future__ import annotations

import logging

from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from organizations.api.permissions import OrgScopedMixin
from organizations.api.serializers import OrganizationDetailSerializer, OrganizationMembershipSerializer
from organizations.models import Membership
from organizations.selectors import memberships_for_user

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
    """One organization of the caller, with the caller's role."""

    @extend_schema(responses=OrganizationDetailSerializer)
    def get(self, request: Request, org: str) -> Response:
        o = self.organization
        return Response({"slug": o.slug, "name": o.name, "timezone": o.timezone, "role": self.role})
