"""One way to scope every ModelAdmin to the staff user's organizations and roles.

Staff members get no Django model permissions: what they may see and do in the admin
follows their memberships. Querysets, foreign-key choices, list filters and autocomplete
all go through ``get_queryset``/``formfield_for_foreignkey`` here; superusers see all.

A member works in one organization at a time (``org_current``, switched in the header and
kept in the session): lists show it, and new objects belong to it without a choice.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import QuerySet
from django.forms import HiddenInput
from django.http import Http404, HttpRequest
from django.utils.html import format_html

from organizations.models import Membership, Organization, Role

#: The session key of the organization a member works in (the header's switch).
ORG_SESSION_KEY = "dossier_organization"


def org_ids_for(request: HttpRequest, min_role: str) -> set[int] | None:
    """Ids of the organizations where the user has at least ``min_role``; None = all."""
    user = request.user
    if not user.is_active or not user.is_staff:
        return set()
    if user.is_superuser:
        return None
    cache: dict[str, set[int]] = request.__dict__.setdefault("_dossier_org_ids", {})
    if min_role not in cache:
        roles = [r for r in Role if Role.allows(r, min_role)]
        cache[min_role] = set(
            Membership.objects.filter(user=user, role__in=roles).values_list("organization_id", flat=True)
        )
    return cache[min_role]


def org_choices(request: HttpRequest) -> list[Organization]:
    """The organizations the staff user may switch between, by name."""
    ids = org_ids_for(request, Role.VIEWER)
    organizations = Organization.objects.order_by("name")
    return list(organizations if ids is None else organizations.filter(pk__in=ids))


def org_current(request: HttpRequest) -> Organization | None:
    """The organization the user works in: the only one, or the one chosen in the header;
    None means all of the user's organizations (until one is chosen)."""
    cache = request.__dict__
    if "_dossier_org_current" not in cache:
        choices = org_choices(request)
        chosen = request.session.get(ORG_SESSION_KEY) if hasattr(request, "session") else None
        current = next((org for org in choices if org.pk == chosen), None)
        if current is None and len(choices) == 1:
            current = choices[0]
        cache["_dossier_org_current"] = current
    return cache["_dossier_org_current"]


def org_current_set(request: HttpRequest, organization_id: int | None) -> Organization | None:
    """Switch the user to one of their organizations (None: all of them)."""
    request.__dict__.pop("_dossier_org_current", None)
    if organization_id is None:
        request.session.pop(ORG_SESSION_KEY, None)
    elif any(org.pk == organization_id for org in org_choices(request)):
        request.session[ORG_SESSION_KEY] = organization_id
    return org_current(request)


class FixedOrganizationInput(HiddenInput):
    """The organization of a new object, fixed to the one the user works in: its name is
    shown, its id travels hidden (the field's queryset still validates it)."""

    def __init__(self, names: dict[str, str], attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.names = names

    @property
    def is_hidden(self) -> bool:  # shown as a labelled row with the organization's name
        return False

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> Any:
        hidden = super().render(name, value, attrs, renderer)
        label = self.names.get(str(value), "")
        return format_html('{}<strong class="fixed-organization">{}</strong>', hidden, label)


class OrgScopedAdmin(admin.ModelAdmin):
    """ModelAdmin limited to the organizations the staff user belongs to."""

    #: lookup from this model to its Organization (``organization``, ``case__organization``…)
    org_path = "organization"
    view_role: str = Role.VIEWER
    write_role: str = Role.OFFICER
    delete_role: str = Role.ADMIN

    # --- scoping -----------------------------------------------------------------------

    def scope(self, queryset: QuerySet[Any], request: HttpRequest, min_role: str) -> QuerySet[Any]:
        ids = org_ids_for(request, min_role)
        return queryset if ids is None else queryset.filter(**{f"{self.org_path}__in": ids})

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = self.scope(super().get_queryset(request), request, self.view_role)
        current = org_current(request)
        if current is not None and request.__dict__.get("_dossier_listing"):
            # Lists follow the organization chosen in the header; a change page reached by
            # a link still opens any object of the user's organizations.
            queryset = queryset.filter(**{self.org_path: current.pk})
        return queryset

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        request.__dict__["_dossier_listing"] = True
        return super().changelist_view(request, {"empty_hint": self.get_empty_hint(request), **(extra_context or {})})

    def _get_obj_does_not_exist_redirect(self, request: HttpRequest, opts: Any, object_id: str) -> Any:
        """Another organization's object (or none): 404, as the API answers. Django's own
        redirect to the index with "doesn't exist" is the same answer, less plainly put."""
        raise Http404(f"No {opts.verbose_name} with this id in your organizations.")

    #: What an empty list says, pointing at what to do next; the default is built from the model's name.
    empty_hint = ""

    def get_empty_hint(self, request: HttpRequest) -> str:
        """What an empty list tells the user to do next."""
        if self.empty_hint:
            return self.empty_hint
        opts = self.model._meta
        if self.has_add_permission(request):
            return f"No {opts.verbose_name_plural} yet. Use “Add {opts.verbose_name}” above to create the first one."
        return f"No {opts.verbose_name_plural} yet."

    def get_list_display(self, request: HttpRequest) -> Any:
        # Within one organization its column only narrows the table.
        shown = super().get_list_display(request)
        if org_current(request) is None:
            return shown
        return [name for name in shown if name != "organization"]

    def _obj_org_id(self, obj: Any) -> int | None:
        target = obj
        for part in self.org_path.split("__"):
            if part == "pk":
                return int(target.pk)
            target = getattr(target, part, None)
            if target is None:
                return None
        return int(target.pk)

    def _allowed(self, request: HttpRequest, min_role: str, obj: Any = None) -> bool:
        ids = org_ids_for(request, min_role)
        if ids is None:
            return True
        if obj is None:
            return bool(ids)
        return self._obj_org_id(obj) in ids

    # --- permissions follow memberships ------------------------------------------------

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, self.view_role)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, self.view_role, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, self.write_role)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, self.write_role, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, self.delete_role, obj)

    # --- choices, filters ----------------------------------------------------------------

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        ids = org_ids_for(request, self.write_role)
        if ids is not None and "queryset" not in kwargs:
            related = db_field.related_model
            if related is Organization:
                kwargs["queryset"] = Organization.objects.filter(pk__in=ids)
            elif related is get_user_model():
                kwargs["queryset"] = related.objects.filter(memberships__organization__in=ids).distinct()
            elif any(f.name == "organization" for f in related._meta.get_fields()):
                kwargs["queryset"] = related._default_manager.filter(organization__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        current = org_current(request)
        writable = org_ids_for(request, self.write_role)
        if "organization" not in initial and current is not None and (writable is None or current.pk in writable):
            initial["organization"] = str(current.pk)
        return initial

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and getattr(db_field, "related_model", None) is Organization and db_field.many_to_one:
            self._fix_organization(request, field)
        return field

    def _fix_organization(self, request: HttpRequest, field: Any) -> None:
        """A new object belongs to the organization the user works in: never picked in the
        form when the user may write there (switched in the header instead)."""
        current = org_current(request)
        allowed = {str(pk): name for pk, name in field.queryset.values_list("pk", "name")}
        if current is None or str(current.pk) not in allowed:
            return
        field.initial = current.pk
        field.widget = FixedOrganizationInput(allowed)
        several = len(org_choices(request)) > 1
        field.help_text = (
            "The organization you work in; switch it at the top of the page." if several else "Your organization."
        )

    def get_list_filter(self, request: HttpRequest) -> Any:
        # Relation filters list only values present in the (scoped) queryset, so another
        # organization's names never show up as filter choices.
        scoped: list[Any] = []
        for item in super().get_list_filter(request):
            if isinstance(item, str) and self._is_relation(item):
                scoped.append((item, admin.RelatedOnlyFieldListFilter))
            else:
                scoped.append(item)
        return scoped

    def _is_relation(self, name: str) -> bool:
        try:
            field = self.model._meta.get_field(name)
        except Exception:
            return False
        return isinstance(field, models.ForeignKey)
