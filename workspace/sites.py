"""Dossier's admin site: members land on their organization's workspace; Django's app
index stays one click away at ``/admin/apps/``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

_View = TypeVar("_View", bound=Callable[..., Any])

#: The sidebar in the order an officer works: exports first, the plumbing last.
APP_ORDER = ["exports", "scheduling", "tagging", "audit", "cases", "organizations", "ops"]


class DossierAdminSite(admin.AdminSite):
    """The admin, with the workspace as its index and the organization switch in the header."""

    site_header = "Dossier"
    site_title = "Dossier"
    index_title = "All apps"

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        from organizations.admin_scoping import org_choices, org_current

        context = super().each_context(request)
        if getattr(request, "user", None) is not None and request.user.is_active and request.user.is_staff:
            current = org_current(request)
            context["dossier_organizations"] = org_choices(request)
            context["dossier_organization"] = current
            context["dossier_zone_name"] = current.timezone if current is not None else "UTC"
        return context

    def admin_view(self, view: _View, cacheable: bool = False) -> _View:
        """Every admin page shows times on the clock of the organization the user works in
        (UTC across several); pages name the zone."""
        inner = super().admin_view(view, cacheable)

        @functools.wraps(inner)
        def on_the_organizations_clock(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            from organizations.admin_scoping import org_current

            current = org_current(request) if request.user.is_active and request.user.is_staff else None
            with timezone.override(current.tzinfo if current is not None else None):
                response = inner(request, *args, **kwargs)
                if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                    response.render()  # templates render lazily: do it while the zone is active
            return response

        return cast(_View, on_the_organizations_clock)

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        """Apps in ``APP_ORDER``, then Django's own (users, the task queue) by name."""
        apps = super().get_app_list(request, app_label)
        rank = {label: i for i, label in enumerate(APP_ORDER)}
        return sorted(apps, key=lambda app: (rank.get(app["app_label"], len(rank)), app["name"]))

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        """The workspace of the organization the user works in."""
        from workspace.views import workspace_index

        return workspace_index(request, site=self, extra_context=extra_context)

    def app_index_all(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        """Django's own index of every app and model."""
        return super().index(request, extra_context)

    def get_urls(self) -> list[Any]:
        from workspace.views import organization_switch, quick_export

        return [
            path("apps/", self.admin_view(self.app_index_all), name="apps"),
            path("workspace/organization/", self.admin_view(organization_switch), name="workspace_organization"),
            path("workspace/export/", self.admin_view(quick_export), name="workspace_export"),
            *super().get_urls(),
        ]
