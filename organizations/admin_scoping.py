"""One way to scope every ModelAdmin to the staff user's organizations and roles.

Staff members get no Django model permissions: what they may see and do in the admin
follows their memberships. Querysets, foreign-key choices, list filters and autocomplete
all go through ``get_queryset``/``formfield_for_foreignkey`` here; superusers see all.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from organizations.models import Membership, Organization, Role


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
        return self.scope(super().get_queryset(request), request, self.view_role)

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
