"""Organizations and memberships in the admin.

Changes an organization admin makes here go through the same services as the API, so they
are validated and audited the same way. The pseudonym key is never shown: it is not an
editable field, it is excluded from every form, and rotating it is an action.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from audit.services import client_ip
from config.errors import ApplicationError
from organizations.admin_scoping import OrgScopedAdmin
from organizations.models import Membership, Organization, Role
from organizations.services import (
    ORGANIZATION_EDITABLE,
    membership_add,
    membership_update,
    membership_update_validate,
    organization_update,
    pseudonym_key_rotate,
    recipient_domains_clean,
)

ROTATE_WARNING = (
    "Pseudonyms in new exports will differ from those in files exported earlier: the same person "
    "can no longer be matched between files made before and after the rotation. This cannot be undone."
)


def _add_service_error(form: forms.ModelForm[Any], exc: ApplicationError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


#: What each delivery setting means, written for the compliance officer who sets it.
DELIVERY_POLICY_HELP = (
    "Any: a scheduled report may attach the file to its email as it is. "
    "Protected: a scheduled report leaves only as a download link or as an encrypted attachment "
    "(passphrase-protected ZIP or S/MIME); a schedule that would attach a plain file is refused. "
    "Choose Protected when reports may hold personal or otherwise confidential data."
)
LINK_ACCESS_HELP = (
    "Anyone with the link: whoever holds a download link from a report email can fetch the file "
    "until the link expires, including anyone the email was forwarded to. "
    "Members only: the link asks for a sign-in and serves the file only to members of this "
    "organization; anyone else is told the link does not exist. Every download is recorded in "
    "the audit log either way."
)


class OrganizationForm(forms.ModelForm[Organization]):
    class Meta:
        model = Organization
        fields = ["name", "slug", "timezone", "allowed_recipient_domains", "delivery_policy", "link_access"]
        help_texts = {
            "name": "As shown to members and on reports (the board report's cover, email subjects).",
            "slug": "Short name in URLs and the API (/api/v1/orgs/<slug>/); lower-case letters, digits and dashes.",
            "timezone": "IANA zone (e.g. Europe/London) for times in lists, exports and relative periods.",
            "delivery_policy": DELIVERY_POLICY_HELP,
            "link_access": LINK_ACCESS_HELP,
        }

    def clean_allowed_recipient_domains(self) -> list[str]:
        try:
            return recipient_domains_clean(self.cleaned_data.get("allowed_recipient_domains") or [])
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    form = OrganizationForm
    org_path = "pk"
    write_role = Role.ADMIN
    exclude = ["pseudonym_key"]
    list_display = ["name", "slug", "timezone", "delivery_policy", "link_access", "created_at"]
    list_filter = ["delivery_policy", "link_access"]
    radio_fields = {"delivery_policy": admin.VERTICAL, "link_access": admin.VERTICAL}
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    actions = ["rotate_pseudonym_key"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_superuser

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        """Settings change through ``organization_update`` (validated, audited); the rest is
        saved field by field so that a form never writes back a stale pseudonym key."""
        if not change:
            super().save_model(request, obj, form, change)
            return
        settings = {name: form.cleaned_data[name] for name in ORGANIZATION_EDITABLE if name in form.cleaned_data}
        organization_update(organization=obj, data=settings, actor=request.user, ip_address=client_ip(request))
        others = [name for name in form.changed_data if name not in ORGANIZATION_EDITABLE]
        if others:
            obj.save(update_fields=others)

    @admin.action(description="Rotate pseudonym key", permissions=["change"])
    def rotate_pseudonym_key(self, request: HttpRequest, queryset: QuerySet[Organization]) -> HttpResponse | None:
        """Ask first (the old pseudonyms cannot be had back), then rotate through the service."""
        allowed = [org for org in queryset if self._allowed(request, Role.ADMIN, org)]
        for org in queryset:
            if org not in allowed:
                self.message_user(request, f"{org}: rotating the pseudonym key needs the admin role.", messages.ERROR)
        if not allowed:
            return None
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Rotate pseudonym key?",
                "opts": self.model._meta,
                "organizations": allowed,
                "warning": ROTATE_WARNING,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/organizations/organization/rotate_pseudonym_key.html", context)
        for org in allowed:
            pseudonym_key_rotate(organization=org, actor=request.user, ip_address=client_ip(request))
        names = ", ".join(str(org) for org in allowed)
        self.message_user(request, f"Rotated the pseudonym key of {names}. {ROTATE_WARNING}", messages.SUCCESS)
        return None


class MembershipForm(forms.ModelForm[Membership]):
    class Meta:
        model = Membership
        fields = ["user", "organization", "role", "identity_access"]
        help_texts = {
            "user": "The person's sign-in; new people are added by a superuser or `manage.py add_member`.",
            "organization": "The organization this membership gives access to.",
            "role": "viewer: sees exports, schedules and the audit trail; officer: also starts exports and "
            "manages schedules; admin: also tag slots, members and the organization's settings.",
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance.pk is not None:
            try:
                membership_update_validate(
                    membership=self.instance, role=cleaned.get("role"), identity_access=cleaned.get("identity_access")
                )
            except ApplicationError as exc:
                _add_service_error(self, exc)
        return cleaned


@admin.register(Membership)
class MembershipAdmin(OrgScopedAdmin):
    form = MembershipForm
    write_role = Role.ADMIN
    list_display = ["user", "organization", "role", "identity_access", "created_at"]
    list_filter = ["role", "identity_access", "organization"]
    list_select_related = ["user", "organization"]
    search_fields = ["user__username", "user__email"]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return ["user", "organization"] if obj else []

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        # Creating users is a superuser's job (or `manage.py add_member`).
        return request.user.is_superuser

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        """Through the services, so that a change of role or identity access is audited."""
        ip = client_ip(request)
        if change:
            saved = membership_update(
                membership=obj,
                role=form.cleaned_data.get("role"),
                identity_access=form.cleaned_data.get("identity_access"),
                actor=request.user,
                ip_address=ip,
            )
        else:
            saved, _ = membership_add(
                organization=obj.organization,
                username=obj.user.get_username(),
                role=obj.role,
                actor=request.user,
            )
            if obj.identity_access:
                saved = membership_update(membership=saved, identity_access=True, actor=request.user, ip_address=ip)
        obj.pk = saved.pk

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # Deleting is another way of removing the last admin of an organization: refuse it
        # as a protected object, which the confirmation pages show and never delete.
        to_delete, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        memberships = list(objs)
        leaving = {m.pk for m in memberships}
        for org_id in {m.organization_id for m in memberships if m.role == Role.ADMIN}:
            remaining = Membership.objects.filter(organization_id=org_id, role=Role.ADMIN).exclude(pk__in=leaving)
            if not remaining.exists():
                org = next(m.organization for m in memberships if m.organization_id == org_id)
                protected.append(f"The last admin of {org}: make another member admin first.")
        return to_delete, model_count, perms_needed, protected
