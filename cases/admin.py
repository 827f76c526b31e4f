"""Cases, investigations and RIUs in the admin, scoped to the user's organizations."""

from __future__ import annotations

from django.contrib import admin

from cases.models import RIU, Case, Investigation
from organizations.admin_scoping import OrgScopedAdmin


class InvestigationInline(admin.TabularInline):
    model = Investigation
    extra = 0
    fields = ["number", "status", "investigator", "allegation_type", "opened_at", "closed_at", "finding"]
    show_change_link = True

    # Inlines follow the parent's scoping; permission to edit them follows the case.
    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return obj is not None and CaseAdmin(Case, admin.site).has_change_permission(request, obj)

    has_change_permission = has_add_permission
    has_delete_permission = has_add_permission

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return True


@admin.register(Case)
class CaseAdmin(OrgScopedAdmin):
    list_display = ["reference", "title", "status", "severity", "category", "business_unit", "country", "created_at"]
    list_filter = ["status", "severity", "intake_channel", "category", "organization"]
    search_fields = ["reference", "title", "external_reference"]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]
    raw_id_fields = ["primary_riu"]
    inlines = [InvestigationInline]
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["organization", "reference", "title", "summary", "status", "assignee"]}),
        (
            "Classification",
            {
                "fields": [
                    "category",
                    "subcategory",
                    "severity",
                    "priority",
                    "intake_channel",
                    "policy_reference",
                    "risk_score",
                ]
            },
        ),
        ("Where", {"fields": ["business_unit", "department", "country", "region", "site"]}),
        ("When", {"fields": ["reported_at", "created_at", "updated_at", "due_at", "closed_at"]}),
        ("Outcome", {"fields": ["outcome", "is_substantiated", "closure_reason", "financial_impact", "currency"]}),
        (
            "Flags",
            {"fields": ["is_anonymous", "retaliation_alleged", "involves_management", "legal_hold", "escalated"]},
        ),
        ("Links", {"fields": ["primary_riu", "source_system", "external_reference", "custom_fields"]}),
    ]


@admin.register(Investigation)
class InvestigationAdmin(OrgScopedAdmin):
    list_display = ["case", "number", "status", "investigator", "allegation_type", "finding", "opened_at"]
    list_filter = ["status", "finding", "organization"]
    search_fields = ["case__reference", "investigator", "allegation_type"]
    list_select_related = ["case"]
    raw_id_fields = ["case"]


@admin.register(RIU)
class RIUAdmin(OrgScopedAdmin):
    list_display = ["reference", "riu_type", "received_at", "reporter_relationship", "language", "is_anonymous"]
    list_filter = ["riu_type", "reporter_relationship", "organization"]
    search_fields = ["reference"]
    date_hierarchy = "received_at"
