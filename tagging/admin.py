"""Tag slots in the admin: all 20 slots per organization, an edit form helped by the
discovered field paths, and a live preview of real values before saving."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from audit.services import client_ip
from organizations.admin_scoping import OrgScopedAdmin, org_current, org_ids_for
from organizations.models import Organization, Role
from organizations.selectors import identity_access_for
from tagging.models import MAX_SLOTS, SourceEntity, TagSlot
from tagging.selectors import tag_fields_discover
from tagging.services import EDITABLE, tag_slot_clear, tag_slot_put


class TagSlotForm(forms.ModelForm[TagSlot]):
    class Meta:
        model = TagSlot
        fields = [
            "organization",
            "slot",
            "label",
            "source_entity",
            "field_path",
            "data_type",
            "sensitivity",
            "is_active",
        ]
        widgets = {
            "field_path": forms.TextInput(
                attrs={
                    "list": "tag-field-paths",
                    "size": 50,
                    "autocomplete": "off",
                    "placeholder": "e.g. business_unit or custom_fields.hr.region",
                }
            ),
            "slot": forms.NumberInput(attrs={"min": 1, "max": MAX_SLOTS}),
        }
        help_texts = {
            "organization": "Whose exports get this column.",
            "source_entity": "Where the value is read: the case, its primary RIU (intake report) or its latest "
            "investigation.",
            "data_type": "How the value is written in files: text, number, date, date and time, yes/no or a list.",
            "is_active": "Untick to leave the column out of new exports without losing its settings.",
        }


@admin.register(TagSlot)
class TagSlotAdmin(OrgScopedAdmin):
    form = TagSlotForm
    write_role = Role.ADMIN
    delete_role = Role.ADMIN
    list_display = [
        "slot",
        "label",
        "source_entity",
        "field_path",
        "data_type",
        "sensitivity",
        "is_active",
        "organization",
    ]
    change_form_template = "admin/tagging/tagslot/change_form.html"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """All 20 slots of each of the user's organizations, empty ones too."""
        ids = org_ids_for(request, self.view_role)
        write_ids = org_ids_for(request, self.write_role)
        orgs = Organization.objects.order_by("name")
        if ids is not None:
            orgs = orgs.filter(pk__in=ids)
        current = org_current(request)
        if current is not None:  # the organization chosen in the header
            orgs = orgs.filter(pk=current.pk)
        configured = {(t.organization_id, t.slot): t for t in self.get_queryset(request)}
        boards = [
            {
                "organization": org,
                "can_edit": write_ids is None or org.pk in write_ids,
                "slots": [(n, configured.get((org.pk, n))) for n in range(1, MAX_SLOTS + 1)],
            }
            for org in orgs
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "boards": boards,
            "title": "Tag slots",
            "max_slots": MAX_SLOTS,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/tagging/tagslot/slots.html", context)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        if "organization" not in initial:
            ids = org_ids_for(request, self.write_role)
            if ids and len(ids) == 1:
                initial["organization"] = str(next(iter(ids)))
        return initial

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        # Discovered paths of every organization the user may configure, for the datalist
        # and the preview (which calls the API with the organization's slug). Examples of
        # identity paths are pseudonyms unless the user has identity access there.
        ids = org_ids_for(request, self.write_role)
        orgs = Organization.objects.all() if ids is None else Organization.objects.filter(pk__in=ids)
        discovery = {}
        for org in orgs[:20]:
            reveal = identity_access_for(user=request.user, organization=org)
            discovery[str(org.pk)] = {
                "slug": org.slug,
                "fields": {
                    entity: [
                        asdict(f) for f in tag_fields_discover(organization=org, source_entity=entity, reveal=reveal)
                    ]
                    for entity in SourceEntity.values
                },
            }
        context["tag_discovery"] = discovery
        return super().render_change_form(request, context, *args, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A configured slot keeps its organization and number; clear it to move a column.
        return ["organization", "slot"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: TagSlot, form: Any, change: bool) -> None:
        """Save through the service, so the admin and the API audit the same way."""
        data = {name: form.cleaned_data[name] for name in EDITABLE if name in form.cleaned_data}
        tag, _ = tag_slot_put(
            organization=obj.organization,
            slot=obj.slot,
            data=data,
            actor=request.user,
            ip_address=client_ip(request),
        )
        obj.pk = tag.pk

    def delete_model(self, request: HttpRequest, obj: TagSlot) -> None:
        tag_slot_clear(tag=obj, actor=request.user, ip_address=client_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            self.delete_model(request, obj)
