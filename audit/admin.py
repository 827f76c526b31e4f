"""The audit log in the admin: read-only, scoped to the staff user's organizations."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent
from organizations.admin_scoping import OrgScopedAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(OrgScopedAdmin):
    empty_hint = "Nothing recorded yet: every export, download and change of settings is recorded here as it happens."
    list_display = ["created_at", "organization", "sequence", "action", "actor_label", "target_type", "target_id"]
    list_filter = ["action"]
    search_fields = ["action", "actor_label", "target_id"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
