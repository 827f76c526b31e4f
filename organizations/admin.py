"""Organizations and memberships in the admin."""

from __future__ import annotations

from django.contrib import admin

from organizations.admin_scoping import OrgScopedAdmin
from organizations.models import Membership, Organization, Role


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    org_path = "pk"
    write_role = Role.ADMIN
    list_display = ["name", "slug", "timezone", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(OrgScopedAdmin):
    write_role = Role.ADMIN
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email"]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return ["user", "organization"] if obj else []

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        # Creating users is a superuser's job (or `manage.py add_member`).
        return request.user.is_superuser
