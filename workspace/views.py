"""The workspace (the admin's landing page), the organization switch and the quick export."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from audit.services import client_ip
from config.errors import ApplicationError
from exports.filters import PERIODS
from exports.models import Dataset, ExportFormat, ExportSource
from exports.services import export_job_create
from organizations.admin_scoping import org_current, org_current_set, org_ids_for
from organizations.models import Role
from workspace.charts import deliveries_per_week_chart, exports_per_day_chart
from workspace.selectors import (
    PROBLEM_DAYS,
    workspace_deliveries_per_week,
    workspace_exports_finished,
    workspace_exports_per_day,
    workspace_exports_running,
    workspace_problems,
    workspace_runs_recent,
    workspace_schedules_next,
    workspace_tag_usage,
    workspace_warnings,
)

#: What the quick export offers: the case formats an officer asks for most.
QUICK_FORMATS = [ExportFormat.XLSX, ExportFormat.CSV, ExportFormat.JSONL, ExportFormat.PARQUET]


def _links() -> dict[str, str]:
    """The filtered admin lists behind each block."""
    exports = reverse("admin:exports_exportjob_changelist")
    schedules = reverse("admin:scheduling_reportschedule_changelist")
    runs = reverse("admin:scheduling_schedulerun_changelist")
    return {
        "running": f"{exports}?status__in=pending,processing",
        "finished": f"{exports}?status__exact=completed",
        "failed_exports": f"{exports}?status__exact=failed",
        "exports": exports,
        "new_export": reverse("admin:exports_exportjob_add"),
        "schedules": f"{schedules}?state=active",
        "paused": f"{schedules}?state=paused",
        "new_schedule": reverse("admin:scheduling_reportschedule_add"),
        "runs": runs,
        "problem_runs": f"{runs}?status__in=failed,partial",
        "tags": reverse("admin:tagging_tagslot_changelist"),
        "certificates": reverse("admin:scheduling_recipientcertificate_changelist"),
        "apps": reverse("admin:apps"),
    }


def workspace_index(
    request: HttpRequest, *, site: AdminSite, extra_context: dict[str, Any] | None = None
) -> TemplateResponse:
    """What runs now, what finished, what goes out next, what failed, in the user's organization."""
    organization = org_current(request)
    visible = org_ids_for(request, Role.VIEWER)
    scope = visible if organization is None else {organization.pk}
    writable = org_ids_for(request, Role.OFFICER)
    admin_of = org_ids_for(request, Role.ADMIN)
    zone_name = organization.timezone if organization is not None else "UTC"
    zone = ZoneInfo(zone_name)
    now = timezone.now()
    member = scope is None or bool(scope)
    context: dict[str, Any] = {
        **site.each_context(request),
        "title": f"Workspace · {organization.name}" if organization else "Workspace · all your organizations",
        "organization": organization,
        "member": member,
        "zone_name": zone_name,
        "links": _links(),
        "now_moment": now,
        "problem_days": PROBLEM_DAYS,
        "can_export": organization is not None and (writable is None or organization.pk in writable),
        "can_certificates": admin_of is None or (organization is not None and organization.pk in admin_of),
        "quick_formats": [(fmt.value, fmt.label) for fmt in QUICK_FORMATS],
        "quick_periods": [(p, p.replace("_", " ").capitalize()) for p in PERIODS],
        **(extra_context or {}),
    }
    if member:
        per_day = workspace_exports_per_day(organization_ids=scope, zone=zone, now=now)
        per_week = workspace_deliveries_per_week(organization_ids=scope, zone=zone, now=now)
        context.update(
            running=workspace_exports_running(organization_ids=scope),
            finished=workspace_exports_finished(organization_ids=scope),
            schedules=workspace_schedules_next(organization_ids=scope),
            runs=workspace_runs_recent(organization_ids=scope),
            problems=workspace_problems(organization_ids=scope, now=now),
            tag_usage=workspace_tag_usage(organization_ids=scope),
            warnings=workspace_warnings(organization_ids=scope, now=now),
            per_day=per_day,
            per_day_chart=exports_per_day_chart(per_day),
            per_week=per_week,
            per_week_chart=deliveries_per_week_chart(per_week),
        )
    return TemplateResponse(request, "admin/workspace/index.html", context)


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("admin:index")


def organization_switch(request: HttpRequest) -> HttpResponse:
    """POST ``organization`` (an id; empty = all of the user's): work in that organization."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    raw = request.POST.get("organization", "")
    wanted = int(raw) if raw.isdigit() else None
    current = org_current_set(request, wanted)
    if wanted is not None and (current is None or current.pk != wanted):
        raise PermissionDenied  # not one of the user's organizations
    return HttpResponseRedirect(_back(request))


def quick_export(request: HttpRequest) -> HttpResponse:
    """POST ``format`` (and ``period``): export the cases of the current organization."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    organization = org_current(request)
    writable = org_ids_for(request, Role.OFFICER)
    if organization is None or not (writable is None or organization.pk in writable):
        raise PermissionDenied
    fmt = request.POST.get("format", "")
    period = request.POST.get("period", "")
    if fmt not in [f.value for f in QUICK_FORMATS] or (period and period not in PERIODS):
        messages.error(request, "Choose one of the offered formats and periods.")
        return HttpResponseRedirect(reverse("admin:index"))
    try:
        job = export_job_create(
            organization=organization,
            dataset=Dataset.CASES,
            format=fmt,
            filters={"period": period} if period else {},
            requested_by=request.user,
            source=ExportSource.ADMIN,
            ip_address=client_ip(request),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Export of {organization.name}'s cases as {job.get_format_display()} started; it shows below."
        )
    return HttpResponseRedirect(reverse("admin:index"))
