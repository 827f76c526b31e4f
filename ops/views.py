"""The admin's operations status page (staff only)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from ops.selectors import ops_status_read
from organizations.admin_scoping import org_ids_for
from organizations.models import Role


def ops_status_view(request: HttpRequest) -> HttpResponse:
    """The figures of ``ops_status``; a staff member sees only their organizations' rows."""
    organization_ids = org_ids_for(request, Role.VIEWER)
    status = ops_status_read(organization_ids=organization_ids)
    context = {
        **admin.site.each_context(request),
        "title": "Operations status",
        "status": status,
        "all_organizations": organization_ids is None,
    }
    return TemplateResponse(request, "admin/ops/status.html", context)
