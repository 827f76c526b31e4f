"""Cases, investigations, RIUs and the people in cases in the admin, scoped to the user's
organizations."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from cases.models import PARTY_PSEUDONYM_COLUMNS, RIU, Case, Investigation, Party
from organizations.admin_scoping import OrgScopedAdmin
from organizations.models import Organization
from organizations.pseudonyms import pseudonym
from organizations.selectors import identity_access_for

HIDDEN = "hidden (no identity access)"


def identity_access(request: HttpRequest, organization: Organization) -> bool:
    """``identity_access_for``, asked once per request and organization."""
    cache: dict[int, bool] = request.__dict__.setdefault("_dossier_identity_access", {})
    if organization.pk not in cache:
        cache[organization.pk] = identity_access_for(user=request.user, organization=organization)
    return cache[organization.pk]


def party_pseudonym(party: Party, field: str) -> str | None:
    """What a member without identity access sees instead of ``field`` of ``party``."""
    column = PARTY_PSEUDONYM_COLUMNS[field].get(party.role)
    if column is None:
        return HIDDEN
    key = bytes(party.case.organization.pseudonym_key)  # memoryview on PostgreSQL
    return pseudonym(key=key, column=column, value=getattr(party, field))


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


class PartyFormSet(BaseInlineFormSet):
    """Parties added on a case belong to the case's organization."""

    def save_new(self, form: Any, commit: bool = True) -> Any:
        form.instance.organization_id = self.instance.organization_id
        return super().save_new(form, commit=commit)


class PartyInline(admin.TabularInline):
    """The people in a case. Members with identity access in the case's organization see and
    (with a writing role) edit names and contacts; everyone else sees the role, the job
    title and pseudonyms, read-only."""

    model = Party
    formset = PartyFormSet
    extra = 0
    identity_fields = ["role", "full_name", "email", "phone", "employee_id", "job_title"]
    masked_fields = [
        "role",
        "name_pseudonym",
        "email_pseudonym",
        "phone_pseudonym",
        "employee_id_pseudonym",
        "job_title",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Party]:
        return super().get_queryset(request).select_related("case__organization")

    def _reveals(self, request: HttpRequest, case: Case | None) -> bool:
        # On the add page there is no organization yet: nothing is revealed there.
        return case is not None and identity_access(request, case.organization)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return self.identity_fields if self._reveals(request, obj) else self.masked_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if self._reveals(request, obj) else self.masked_fields

    # Editing follows the case, and only members who may see identities may write them.
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._reveals(request, obj) and CaseAdmin(Case, admin.site).has_change_permission(request, obj)

    has_change_permission = has_add_permission
    has_delete_permission = has_add_permission

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    @admin.display(description="full name")
    def name_pseudonym(self, party: Party) -> str | None:
        return party_pseudonym(party, "full_name")

    @admin.display(description="email")
    def email_pseudonym(self, party: Party) -> str | None:
        return party_pseudonym(party, "email")

    @admin.display(description="phone")
    def phone_pseudonym(self, party: Party) -> str | None:
        return party_pseudonym(party, "phone")

    @admin.display(description="employee id")
    def employee_id_pseudonym(self, party: Party) -> str | None:
        return party_pseudonym(party, "employee_id")


#: What each case field means, on the case form (the model keeps only the few it had).
CASE_HELP = {
    "organization": "The organization the case belongs to.",
    "reference": "CASE-2026-000123, unique per organization.",
    "title": "A short description, without names: titles appear in lists and exports.",
    "summary": "What was reported, in a few sentences.",
    "status": "Where the case stands: new, open, under investigation, closed.",
    "assignee": "The staff member handling the case.",
    "category": "The kind of concern (e.g. Fraud, Harassment), as reported in exports and the board report.",
    "subcategory": "A finer kind within the category.",
    "severity": "How serious the concern is; high and critical cases are counted apart in reports.",
    "priority": "Order of handling, P1 first.",
    "intake_channel": "How the report came in (hotline, web form, email, in person…).",
    "policy_reference": "The policy or code section concerned.",
    "risk_score": "0–100, from the intake assessment.",
    "business_unit": "The part of the organization the concern is about.",
    "department": "The department within the business unit.",
    "country": "ISO 3166-1 alpha-2 code, e.g. GB.",
    "region": "The region used in reporting (EMEA, APAC…).",
    "site": "The office, plant or store.",
    "reported_at": "When the concern was first reported.",
    "created_at": "When the case was opened; exports' period filters use it.",
    "updated_at": "When the case last changed.",
    "due_at": "When the case should be closed by.",
    "closed_at": "When the case was closed; empty while open.",
    "outcome": "How the case ended.",
    "is_substantiated": "Whether the allegations were found true; empty until decided.",
    "closure_reason": "Why the case was closed, in a line.",
    "financial_impact": "The loss or exposure found, in the currency below.",
    "currency": "ISO 4217 code, e.g. EUR.",
    "is_anonymous": "The reporter chose not to give their name.",
    "retaliation_alleged": "The reporter says they suffered retaliation.",
    "involves_management": "Someone in management is a subject of the case.",
    "legal_hold": "Records must be kept: nothing about the case may be deleted.",
    "escalated": "Raised to the audit committee or the board.",
    "primary_riu": "The report (RIU) the case was opened from.",
    "source_system": "The system the case came from.",
    "external_reference": "The case's id in that system.",
    "custom_fields": "Your organization's own fields, as JSON; tag slots turn them into export columns.",
}


class CaseForm(forms.ModelForm[Case]):
    class Meta:
        model = Case
        fields = list(CASE_HELP)
        help_texts = CASE_HELP


@admin.register(Case)
class CaseAdmin(OrgScopedAdmin):
    form = CaseForm
    # No party field in the list or the search: a hit would tell a member without identity
    # access that a person is in the case.
    list_display = ["reference", "title", "status", "severity", "category", "business_unit", "country", "created_at"]
    list_filter = ["status", "severity", "intake_channel", "category", "organization"]
    search_fields = ["reference", "title", "external_reference"]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]
    raw_id_fields = ["primary_riu"]
    inlines = [PartyInline, InvestigationInline]
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

    def has_export_permission(self, request: HttpRequest) -> bool:
        """Who is offered the "Export selected cases" action: officers and admins, not viewers."""
        return self._allowed(request, self.write_role)


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
