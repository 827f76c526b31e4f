"""Export jobs in the admin: live progress, download, cancel, a "New export" form, and
"Export selected cases" on the case list."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html

from audit.services import client_ip
from cases.models import Case, CaseStatus, Severity
from config.errors import ApplicationError
from exports.columns import DEFAULT_MAX_INVESTIGATIONS, IDENTITY_REASON_MAX, MAX_INVESTIGATIONS
from exports.columns_base import IdentityMode
from exports.downloads import export_file_response
from exports.filters import PERIODS
from exports.models import Dataset, ExportFormat, ExportJob, ExportSource, ExportStatus
from exports.services import export_job_cancel, export_job_create
from organizations.admin_scoping import OrgScopedAdmin, org_ids_for
from organizations.models import Organization, Role
from organizations.selectors import identity_access_for

STATUS_COLOURS = {
    "pending": "#6c757d",
    "processing": "#0d6efd",
    "completed": "#198754",
    "failed": "#dc3545",
    "cancelled": "#9a4a00",
    "expired": "#495057",
}


class NewExportForm(forms.ModelForm[ExportJob]):
    """What an officer fills in to ask for a file."""

    period = forms.ChoiceField(
        choices=[("", "— use dates below —")] + [(p, p.replace("_", " ")) for p in PERIODS],
        required=False,
        help_text="Resolved now, in the organization's timezone.",
    )
    created_from = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Cases created on or after this day; leave empty with a period, or for no lower limit.",
    )
    created_to = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Cases created on or before this day; empty = up to now.",
    )
    status_filter = forms.MultipleChoiceField(
        choices=CaseStatus.choices,
        required=False,
        label="Status",
        widget=forms.CheckboxSelectMultiple,
        help_text="Tick none for every status.",
    )
    severity_filter = forms.MultipleChoiceField(
        choices=Severity.choices,
        required=False,
        label="Severity",
        widget=forms.CheckboxSelectMultiple,
        help_text="Tick none for every severity.",
    )
    category_filter = forms.CharField(required=False, label="Categories", help_text="Comma-separated; empty = all.")
    business_unit_filter = forms.CharField(
        required=False, label="Business units", help_text="Comma-separated; empty = all."
    )
    include_investigations = forms.BooleanField(
        required=False, initial=True, help_text="Add each case's investigations as columns beside it."
    )
    max_investigations = forms.IntegerField(
        min_value=0,
        max_value=MAX_INVESTIGATIONS,
        initial=DEFAULT_MAX_INVESTIGATIONS,
        help_text=f"How many investigations per case get columns of their own, 0 to {MAX_INVESTIGATIONS}.",
    )
    include_overflow = forms.BooleanField(
        required=False, initial=False, help_text="Add a column counting the investigations left out above."
    )
    include_tags = forms.BooleanField(
        required=False,
        initial=True,
        label="Include tag columns",
        help_text="Your organization's configured tag slots, as columns after the case's own.",
    )
    identity = forms.ChoiceField(
        label="People in the cases",
        choices=[
            (IdentityMode.PSEUDONYMISE, "Pseudonymise (PSN-…; the same person keeps the same pseudonym)"),
            (IdentityMode.OMIT, "Leave out the identity columns"),
            (IdentityMode.INCLUDE, "Reveal names and contact details (identity access and a reason needed)"),
        ],
        initial=IdentityMode.PSEUDONYMISE,
        required=False,  # pseudonymise unless said otherwise
        help_text="Reporters, subjects and witnesses, and tag columns marked identity.",
    )
    identity_reason = forms.CharField(
        label="Reason for revealing identities",
        required=False,
        max_length=IDENTITY_REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Recorded in the audit trail and in the file's About sheet.",
    )
    requested_by: Any = None  # the signed-in user, set by the admin

    class Meta:
        model = ExportJob
        fields = ["organization", "dataset", "format"]
        help_texts = {
            "organization": "Whose cases are exported.",
            "dataset": "One row per case, one row per investigation, or the board report (a PDF).",
            "format": "Excel opens in any spreadsheet; CSV and JSON Lines suit other systems; Parquet suits "
            "analytics tools; PDF is for the board report only.",
        }

    def definition(self) -> dict[str, Any]:
        """The export definition in the API's shape."""
        data = self.cleaned_data

        def split(text: str) -> list[str]:
            return [part.strip() for part in (text or "").split(",") if part.strip()]

        return {
            "dataset": data["dataset"],
            "format": data["format"],
            "filters": {
                "period": data.get("period") or None,
                "created_from": data["created_from"].isoformat() if data.get("created_from") else None,
                "created_to": data["created_to"].isoformat() if data.get("created_to") else None,
                "status": data.get("status_filter") or [],
                "severity": data.get("severity_filter") or [],
                "category": split(data.get("category_filter", "")),
                "business_unit": split(data.get("business_unit_filter", "")),
            },
            "columns": {
                "include_investigations": data.get("include_investigations", False),
                "max_investigations": data.get("max_investigations")
                if data.get("max_investigations") is not None
                else DEFAULT_MAX_INVESTIGATIONS,
                "include_overflow": data.get("include_overflow", False),
                "include_tags": data.get("include_tags", False),
                "identity": data.get("identity") or IdentityMode.PSEUDONYMISE,
                "identity_reason": data.get("identity_reason", ""),
            },
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors or "organization" not in cleaned:
            return cleaned
        # Validate with the same service the API uses; map its field to this form's.
        from django.utils import timezone

        from exports.services import export_definition_validate

        definition = self.definition()
        if definition["columns"]["identity"] == IdentityMode.INCLUDE and not identity_access_for(
            user=self.requested_by, organization=cleaned["organization"]
        ):
            self.add_error("identity", "Revealing identities needs identity access in this organization.")
            return cleaned
        try:
            export_definition_validate(timezone=cleaned["organization"].timezone, now=timezone.now(), **definition)
        except ApplicationError as exc:
            field = {
                "dataset": "dataset",
                "format": "format",
                "columns.identity": "identity",
                "columns.identity_reason": "identity_reason",
            }.get(exc.field or "")
            self.add_error(field, exc.message)
        return cleaned


@admin.register(ExportJob)
class ExportJobAdmin(OrgScopedAdmin):
    form = NewExportForm
    empty_hint = (
        "No exports yet. Use “Add export job” above to choose the cases, columns and format, or start one from "
        "the workspace; the file appears here with a Download button."
    )
    list_display = [
        "created_at",
        "dataset",
        "format",
        "status_badge",
        "progress_bar",
        "row_count",
        "size",
        "requested_by",
        "source",
        "download",
    ]
    list_filter = ["status", "format", "dataset", "source", "organization"]
    list_select_related = ["organization", "requested_by"]
    actions = ["cancel_selected"]
    change_list_template = "admin/exports/exportjob/change_list.html"
    readonly_fields = [
        "id",
        "organization",
        "dataset",
        "format",
        "status",
        "filters",
        "columns",
        "tag_snapshot",
        "source",
        "requested_by",
        "rows_done",
        "rows_total",
        "row_count",
        "file_size_bytes",
        "sha256",
        "file_name",
        "error",
        "attempts",
        "created_at",
        "started_at",
        "completed_at",
        "expires_at",
    ]
    fieldsets = [
        (None, {"fields": ["organization", "dataset", "format"]}),
        (
            "Which cases",
            {
                "fields": [
                    "period",
                    "created_from",
                    "created_to",
                    "status_filter",
                    "severity_filter",
                    "category_filter",
                    "business_unit_filter",
                ]
            },
        ),
        ("Columns", {"fields": ["include_investigations", "max_investigations", "include_overflow", "include_tags"]}),
        ("Identities", {"fields": ["identity", "identity_reason"]}),
    ]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"requested_by": request.user})

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None:
            return [(None, {"fields": self.readonly_fields})]
        return self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else []

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a job is evidence: it is read, downloaded or cancelled, never edited

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # --- columns ---------------------------------------------------------------------

    @admin.display(description="Status", ordering="status")
    def status_badge(self, job: ExportJob) -> str:
        return format_html(
            '<span class="export-status" data-live="status" '
            'style="background:{};color:#fff;padding:2px 8px;border-radius:10px">{}</span>',
            STATUS_COLOURS.get(job.status, "#333"),
            job.get_status_display(),
        )

    @admin.display(description="Progress")
    def progress_bar(self, job: ExportJob) -> str:
        # A job still running is asked again in place (exports/progress.js), not by reloading.
        live = (
            format_html(' data-progress-url="{}"', reverse("admin:exports_exportjob_progress", args=[job.pk]))
            if not job.is_terminal
            else ""
        )
        return format_html(
            '<div{} title="{} of {} rows" style="width:120px;background:#e9ecef;border-radius:4px">'
            '<div class="export-progress" data-live="bar" '
            'style="width:{}%;background:{};height:10px;border-radius:4px"></div></div>'
            '<small data-live="percent" data-unit="%">{}%</small>',
            live,
            job.rows_done,
            job.rows_total or "?",
            job.percent,
            STATUS_COLOURS.get(job.status, "#333"),
            job.percent,
        )

    @admin.display(description="Size", ordering="file_size_bytes")
    def size(self, job: ExportJob) -> str:
        return filesizeformat(job.file_size_bytes) if job.file_size_bytes is not None else "—"

    @admin.display(description="File")
    def download(self, job: ExportJob) -> str:
        if job.status != ExportStatus.COMPLETED:
            return format_html('<span data-live="{}">—</span>', "download")
        url = reverse("admin:exports_exportjob_download", args=[job.pk])
        return format_html('<a class="button" href="{}">Download</a>', url)

    # --- views -----------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        extra = [
            path(
                "<uuid:pk>/download/", self.admin_site.admin_view(self.download_view), name="exports_exportjob_download"
            ),
            path(
                "<uuid:pk>/progress/", self.admin_site.admin_view(self.progress_view), name="exports_exportjob_progress"
            ),
        ]
        return extra + super().get_urls()

    def download_view(self, request: HttpRequest, pk: str) -> HttpResponseBase:
        job = get_object_or_404(self.get_queryset(request), pk=pk)
        try:
            return export_file_response(job, actor=request.user, ip_address=client_ip(request), via="admin")
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.WARNING)
            return HttpResponseRedirect(reverse("admin:exports_exportjob_changelist"))

    def progress_view(self, request: HttpRequest, pk: str) -> JsonResponse:
        """A job's status and progress as JSON, for pages that refresh it in place; another
        organization's job is a 404 like any object out of reach."""
        job = get_object_or_404(self.get_queryset(request), pk=pk)
        completed = job.status == ExportStatus.COMPLETED
        return JsonResponse(
            {
                "id": str(job.pk),
                "status": job.status,
                "status_label": job.get_status_display(),
                "colour": STATUS_COLOURS.get(job.status, "#333"),
                "percent": job.percent,
                "rows_done": job.rows_done,
                "rows_total": job.rows_total,
                "row_count": job.row_count,
                "terminal": job.is_terminal,
                "error": job.error if job.status == ExportStatus.FAILED else "",
                "download_url": reverse("admin:exports_exportjob_download", args=[job.pk]) if completed else None,
            },
            headers={"Cache-Control": "no-store"},
        )

    def save_model(self, request: HttpRequest, obj: ExportJob, form: Any, change: bool) -> None:
        """Create through the service (validation, tag snapshot, audit, enqueue)."""
        job = export_job_create(
            organization=obj.organization,
            requested_by=request.user,
            source=ExportSource.ADMIN,
            ip_address=client_ip(request),
            **form.definition(),
        )
        obj.pk = job.pk

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """Officers and admins may cancel; a viewer is not offered the action at all."""
        return self._allowed(request, self.write_role)

    @admin.action(description="Cancel selected exports", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[ExportJob]) -> None:
        cancelled = 0
        for job in queryset:
            if not self._allowed(request, self.write_role, job):
                continue
            try:
                export_job_cancel(job=job, actor=request.user, ip_address=client_ip(request))
                cancelled += 1
            except ApplicationError:
                pass
        self.message_user(request, f"Cancelled {cancelled} export(s); finished ones were left as they are.")


@admin.action(description="Export selected cases (XLSX)", permissions=["export"])
def export_selected_cases(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Case]) -> HttpResponse | None:
    """Queue an XLSX of the selected cases, one job per organization among them."""
    writable = org_ids_for(request, Role.OFFICER)
    by_org: dict[int, list[str]] = {}
    for org_id, reference in queryset.values_list("organization_id", "reference"):
        if writable is None or org_id in writable:
            by_org.setdefault(org_id, []).append(reference)
    if not by_org:
        modeladmin.message_user(request, "Exporting needs the officer role.", messages.ERROR)
        return None
    for org_id, references in by_org.items():
        try:
            export_job_create(
                organization=Organization.objects.get(pk=org_id),
                dataset=Dataset.CASES,
                format=ExportFormat.XLSX,
                filters={"reference": references},
                requested_by=request.user,
                source=ExportSource.ADMIN,
                ip_address=client_ip(request),
            )
        except ApplicationError as exc:
            modeladmin.message_user(request, exc.message, messages.ERROR)
            return None
    modeladmin.message_user(request, f"Export of {sum(map(len, by_org.values()))} case(s) queued.")
    return HttpResponseRedirect(reverse("admin:exports_exportjob_changelist"))
