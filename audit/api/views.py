"""The organization's audit trail over the API (admins only)."""

from __future__ import annotations

from rest_framework import generics

from audit.api.serializers import AuditEventSerializer
from audit.models import AuditEvent
from organizations.api.permissions import OrgScopedMixin
from organizations.models import Role


class AuditEventListView(OrgScopedMixin, generics.ListAPIView[AuditEvent]):
    """Newest first; ``?action=export.created`` filters by action."""

    serializer_class = AuditEventSerializer
    read_role = Role.ADMIN

    def get_queryset(self):  # type: ignore[no-untyped-def]
        events = AuditEvent.objects.filter(organization=self.organization).order_by("-sequence")
        if action := self.request.query_params.get("action"):
            events = events.filter(action=action)
        return events
