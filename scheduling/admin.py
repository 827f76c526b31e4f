"""Scheduled reports in the admin: the list with next runs in two zones, a form that previews
the next five runs as you type, run now / test / pause / resume, and read-only run history
with each recipient's delivery."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from audit.services import client_ip
from config.errors import ApplicationError
from organizations.admin_scoping import OrgScopedAdmin, org_ids_for
from organizations.models import Organization
from scheduling import certificates_admin  # noqa: F401 (registers the recipient certificate admin)
from scheduling.forms import WEEKDAYS, ReportScheduleForm
from scheduling.models import Delivery, ReportSchedule, ScheduleRun
from scheduling.services import (
    schedule_create,
    schedule_delete,
    schedule_pause,
    schedule_resume,
    schedule_run_now,
    schedule_update,
)
from scheduling.timemath import next_runs

RUN_COLOURS = {
    "pending": "#6c757d",
    "running": "#0d6efd",
    "success": "#198754",
    "partial": "#9a4a00",  # white text on these stays above 4.5:1
    "failed": "#dc3545",
    "skipped": "#495057",
}
DELIVERY_COLOURS = {"pending": "#6c757d", "sent": "#198754", "failed": "#dc3545"}
RUN_HISTORY_LIMIT = 20
EMPTY = "—"


# --- display helpers ------------------------------------------------------------------------


def _badge(colour: str, text: str, title: str = "") -> str:
    return format_html(
        '<span class="schedule-badge" title="{}" style="background:{};color:#fff;padding:2px 8px;'
        'border-radius:10px;white-space:nowrap">{}</span>',
        title,
        colour,
        text,
    )


def _zone(name: str) -> Any:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return UTC


def local_time(moment: datetime | None, zone_name: str) -> str:
    """'Tue 31 Mar 2026 08:00 BST (+01:00)': a moment on the schedule's wall clock."""
    if moment is None:
        return EMPTY
    local = moment.astimezone(_zone(zone_name))
    name = local.tzname() or ""
    abbreviation = f" {name}" if name.isalpha() and name != "UTC" else ""
    return f"{local:%a %d %b %Y %H:%M}{abbreviation} ({local.isoformat()[-6:]})"


def utc_time(moment: datetime | None) -> str:
    """'2026-03-31 07:00 UTC'."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if moment is not None else EMPTY


def schedule_summary(spec: Any) -> str:
    """A rule in words: 'Monthly on the last day at 08:00', 'cron */15 9-17 * * 1-5'."""
    try:
        kind, at = spec["kind"], f"at {spec.get('time', '?')}"
        if kind == "cron":
            return f"cron {spec['cron']}"
        if kind == "daily":
            return f"Daily {at}"
        if kind == "weekly":
            return f"Weekly on {WEEKDAYS[int(spec['day_of_week']) - 1]} {at}"
        if kind == "monthly":
            day = spec["day_of_month"]
            if day == "last":
                return f"Monthly on the last day {at}"
            shorter = " (or the month's last day)" if int(day) >= 29 else ""
            return f"Monthly on day {int(day)}{shorter} {at}"
    except (KeyError, TypeError, ValueError, IndexError):
        pass
    return str(spec)


def _run_time(run: ScheduleRun) -> str:
    """When a run was due, on its schedule's clock and in UTC."""
    return format_html(
        '<span style="white-space:nowrap">{}</span><br><small style="white-space:nowrap">{}</small>',
        local_time(run.scheduled_for, run.schedule.timezone),
        utc_time(run.scheduled_for),
    )


def _deliveries_list(deliveries: list[Delivery]) -> str:
    if not deliveries:
        return EMPTY
    items = format_html_join(
        "",
        "<li>{} {} <small>· {} attempt{}</small>{}</li>",
        (
            (
                d.recipient,
                _badge(DELIVERY_COLOURS.get(d.status, "#333"), d.get_status_display()),
                d.attempts,
                "" if d.attempts == 1 else "s",
                format_html('<br><small class="delivery-error" style="color:#dc3545">{}</small>', d.last_error)
                if d.last_error
                else "",
            )
            for d in deliveries
        ),
    )
    return format_html('<ul class="schedule-deliveries" style="margin:0;padding-left:1em">{}</ul>', items)


# --- run history (read only) ----------------------------------------------------------------


class _ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]
    """History is evidence: seen by whoever may see the parent, changed by nobody."""

    extra = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        parent = self.admin_site._registry.get(self.parent_model)
        return isinstance(parent, OrgScopedAdmin) and parent.has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _RecentRunsFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    """Only the newest runs: a schedule running every 15 minutes has thousands."""

    def get_queryset(self) -> Any:
        if not hasattr(self, "_recent"):
            self._recent = list(super().get_queryset()[:RUN_HISTORY_LIMIT])
        return self._recent


class ScheduleRunInline(_ReadOnlyInline):
    """A schedule's newest runs, each with its per-recipient deliveries."""

    model = ScheduleRun
    formset = _RecentRunsFormSet
    verbose_name_plural = f"Run history (newest {RUN_HISTORY_LIMIT})"
    show_change_link = True
    fields = readonly_fields = (
        "scheduled",
        "trigger",
        "run_status",
        "row_count",
        "missed_slots",
        "run_error",
        "deliveries",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ScheduleRun]:
        return (
            super()
            .get_queryset(request)
            .select_related("schedule")
            .prefetch_related("deliveries")
            .order_by("-scheduled_for", "-created_at")
        )

    @admin.display(description="Scheduled for")
    def scheduled(self, run: ScheduleRun) -> str:
        return _run_time(run)

    @admin.display(description="Status")
    def run_status(self, run: ScheduleRun) -> str:
        return _badge(RUN_COLOURS.get(run.status, "#333"), run.get_status_display())

    @admin.display(description="Error")
    def run_error(self, run: ScheduleRun) -> str:
        return run.error or EMPTY

    @admin.display(description="Deliveries")
    def deliveries(self, run: ScheduleRun) -> str:
        return _deliveries_list(list(run.deliveries.all()))


class DeliveryInline(_ReadOnlyInline):
    """One run's deliveries: recipient, status, attempts, error."""

    model = Delivery
    fields = readonly_fields = (
        "kind",
        "recipient",
        "delivery_status",
        "attempts",
        "sent_at",
        "next_attempt_at",
        "last_error",
        "attached",
        "protection",
        "sha256",
        "message_id",
    )

    @admin.display(description="Status")
    def delivery_status(self, delivery: Delivery) -> str:
        return _badge(DELIVERY_COLOURS.get(delivery.status, "#333"), delivery.get_status_display())


class StateFilter(admin.SimpleListFilter):
    """Active or paused, in those words."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("paused", "Paused")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("active", "paused"):
            return queryset.filter(is_active=self.value() == "active")
        return queryset


# --- schedules --------------------------------------------------------------------------------

_ACTIONS = {"run": "Run now", "test": "Send a test to me", "pause": "Pause", "resume": "Resume"}


@admin.register(ReportSchedule)
class ReportScheduleAdmin(OrgScopedAdmin):
    """Schedules of the user's organizations: officers write and act, viewers read."""

    form = ReportScheduleForm
    org_path = "organization"
    empty_hint = (
        "No scheduled reports yet. Use “Add report schedule” above to send a file on a timetable (monthly, "
        "weekly, daily or cron) on your organization's clock."
    )
    list_display = [
        "name",
        "organization",
        "rule",
        "timezone",
        "next_run_column",
        "last_status",
        "state",
        "owner",
    ]
    list_filter = [StateFilter, "last_run_status", "delivery_method", "organization"]
    list_select_related = ["organization", "owner"]
    search_fields = ["name", "description"]
    actions = ["run_now", "send_test_to_me", "pause", "resume"]
    change_form_template = "admin/scheduling/reportschedule/change_form.html"
    inlines = [ScheduleRunInline]

    _form_fieldsets = [
        ("Export", {"fields": ["dataset", "format", "period"]}),
        ("When", {"fields": ["kind", "time", "day_of_week", "day_of_month", "cron", "timezone"]}),
        (
            "Delivery",
            {
                "fields": [
                    "delivery_method",
                    "recipients",
                    "attach_file",
                    "protection",
                    "passphrase",
                    "storage_path",
                    "skip_if_empty",
                ]
            },
        ),
    ]
    _status_fields = ["is_active", "paused_reason", "next_run", "last_run", "consecutive_failures", "all_runs"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [
                (None, {"fields": ["organization", "name", "description"]}),
                *self._form_fieldsets,
                ("Status", {"fields": ["is_active"]}),
            ]
        if not self.has_change_permission(request, obj):
            return [
                (None, {"fields": ["organization", "owner", "name", "description"]}),
                ("Export", {"fields": ["dataset", "format", "filters_display"]}),
                ("When", {"fields": ["rule", "timezone", "upcoming_runs"]}),
                (
                    "Delivery",
                    {
                        "fields": [
                            "delivery_method",
                            "recipients_display",
                            "attach_file",
                            "protection",
                            "storage_path",
                            "skip_if_empty",
                        ]
                    },
                ),
                ("Status", {"fields": self._status_fields}),
            ]
        return [
            (None, {"fields": ["organization", "owner", "name", "description"]}),
            *self._form_fieldsets,
            ("Status", {"fields": self._status_fields}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        return [
            "organization",
            "owner",
            "filters_display",
            "rule",
            "upcoming_runs",
            "recipients_display",
            *self._status_fields[1:],
        ]

    def get_list_display(self, request: HttpRequest) -> Any:
        # One organization's staff need no organization column; it only narrows the table.
        ids = org_ids_for(request, self.view_role)
        single = ids is not None and len(ids) == 1
        return [name for name in self.list_display if not (single and name == "organization")]

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.inlines if obj is not None else []

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        ids = org_ids_for(request, self.write_role)
        if "organization" not in initial and ids and len(ids) == 1:
            initial["organization"] = str(next(iter(ids)))
        organization = Organization.objects.filter(pk=str(initial.get("organization") or 0)).first()
        initial.setdefault("timezone", organization.timezone if organization else "UTC")
        return initial

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        # The preview calls the API under an organization's slug; any the user may see will do.
        ids = org_ids_for(request, self.view_role)
        orgs = Organization.objects.all() if ids is None else Organization.objects.filter(pk__in=ids)
        context["schedule_org_slugs"] = {str(pk): slug for pk, slug in orgs.values_list("pk", "slug")}
        obj = context.get("original")
        context["schedule_actions"] = (
            [
                (label, reverse("admin:scheduling_reportschedule_do", args=[obj.pk, what]))
                for what, label in _ACTIONS.items()
                if not (what == "pause" and not obj.is_active) and not (what == "resume" and obj.is_active)
            ]
            if obj is not None and obj.pk and self.has_change_permission(request, obj)
            else []
        )
        return super().render_change_form(request, context, *args, **kwargs)

    # --- list columns and read-only fields ---------------------------------------------------

    @admin.display(description="Schedule")
    def rule(self, schedule: ReportSchedule) -> str:
        return schedule_summary(schedule.schedule)

    @admin.display(description="Next run (local · UTC)", ordering="next_run_at")
    def next_run_column(self, schedule: ReportSchedule) -> str:
        if schedule.next_run_at is None:
            return EMPTY
        return format_html(
            '<span class="next-run-local" style="white-space:nowrap">{}</span><br>'
            '<small class="next-run-utc" style="white-space:nowrap">{}</small>',
            local_time(schedule.next_run_at, schedule.timezone),
            utc_time(schedule.next_run_at),
        )

    @admin.display(description="Next run")
    def next_run(self, schedule: ReportSchedule) -> str:
        if schedule.next_run_at is None:
            return "Not scheduled (paused)"
        return f"{local_time(schedule.next_run_at, schedule.timezone)} · {utc_time(schedule.next_run_at)}"

    @admin.display(description="Last run", ordering="last_run_status")
    def last_status(self, schedule: ReportSchedule) -> str:
        if not schedule.last_run_status:
            return EMPTY
        return _badge(
            RUN_COLOURS.get(schedule.last_run_status, "#333"),
            schedule.get_last_run_status_display(),
            title=utc_time(schedule.last_run_at),
        )

    @admin.display(description="Last run")
    def last_run(self, schedule: ReportSchedule) -> str:
        if not schedule.last_run_status:
            return "Never run"
        return format_html("{} {}", self.last_status(schedule), local_time(schedule.last_run_at, schedule.timezone))

    @admin.display(description="State", ordering="is_active")
    def state(self, schedule: ReportSchedule) -> str:
        if schedule.is_active:
            return _badge("#198754", "Active")
        reason = (
            format_html('<br><small class="paused-reason">{}</small>', schedule.paused_reason)
            if schedule.paused_reason
            else ""
        )
        return format_html("{}{}", _badge("#6c757d", "Paused"), reason)

    @admin.display(description="Upcoming runs")
    def upcoming_runs(self, schedule: ReportSchedule) -> str:
        if not schedule.is_active:
            return "None while paused."
        try:
            runs = next_runs(schedule.schedule, schedule.timezone, timezone.now(), 5)
        except ApplicationError as exc:
            return exc.message
        return format_html(
            "<ol>{}</ol>",
            format_html_join("", "<li>{} · {}</li>", ((local_time(r, schedule.timezone), utc_time(r)) for r in runs)),
        )

    @admin.display(description="Cases")
    def filters_display(self, schedule: ReportSchedule) -> str:
        filters = schedule.filters or {}
        shown = {k: v for k, v in filters.items() if v not in (None, "", [])}
        return ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in shown.items()) or "All cases"

    @admin.display(description="Recipients")
    def recipients_display(self, schedule: ReportSchedule) -> str:
        return ", ".join(schedule.recipients or []) or EMPTY

    @admin.display(description="All runs")
    def all_runs(self, schedule: ReportSchedule) -> str:
        count = schedule.runs.count()
        url = reverse("admin:scheduling_schedulerun_changelist") + f"?schedule__id__exact={schedule.pk}"
        if not count:
            return "No runs yet"
        return format_html('<a href="{}">{}</a>', url, "1 run" if count == 1 else f"All {count} runs")

    # --- saving and deleting go through the services ------------------------------------------

    def save_model(self, request: HttpRequest, obj: ReportSchedule, form: Any, change: bool) -> None:
        """Create or change through the service, so the admin validates and audits like the API."""
        data = form.schedule_data()
        if change:
            saved = schedule_update(schedule=obj, data=data, actor=request.user, ip_address=client_ip(request))
        else:
            saved = schedule_create(
                organization=obj.organization, owner=request.user, data=data, ip_address=client_ip(request)
            )
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: ReportSchedule) -> None:
        schedule_delete(schedule=obj, actor=request.user, ip_address=client_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ReportSchedule]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # Runs and deliveries go with their schedule; that nobody may delete them one by one
        # must not stop an admin deleting the schedule.
        to_delete, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        return to_delete, model_count, perms_needed - {str(ScheduleRun._meta.verbose_name)}, protected

    # --- run now, test, pause, resume ------------------------------------------------------

    def _perform(self, request: HttpRequest, schedule: ReportSchedule, what: str) -> str | None:
        """Do one action on one schedule; a message when it could not be done."""
        if not self._allowed(request, self.write_role, schedule):
            return f"{schedule}: this needs the officer role in {schedule.organization}."
        ip = client_ip(request)
        try:
            if what in ("run", "test"):
                schedule_run_now(schedule=schedule, actor=request.user, to_me=what == "test", ip_address=ip)
            elif what == "pause":
                if not schedule.is_active:
                    return f"{schedule} is already paused."
                schedule_pause(
                    schedule=schedule,
                    actor=request.user,
                    ip_address=ip,
                    reason=f"Paused by {request.user.get_username()} in the admin.",
                )
            elif what == "resume":
                if schedule.is_active:
                    return f"{schedule} is already active."
                schedule_resume(schedule=schedule, actor=request.user, ip_address=ip)
        except ApplicationError as exc:
            return f"{schedule}: {exc.message}"
        return None

    def _done_message(self, request: HttpRequest, what: str, done: list[ReportSchedule]) -> str:
        names = ", ".join(str(s) for s in done)
        if what == "run":
            return f"Run started for {names}; its status shows in the run history."
        if what == "test":
            return f"Test run of {names} started: it goes to {getattr(request.user, 'email', '')} only."
        if what == "pause":
            return f"Paused {names}."
        return "Resumed " + ", ".join(f"{s} (next run {local_time(s.next_run_at, s.timezone)})" for s in done) + "."

    def _apply(self, request: HttpRequest, schedules: Any, what: str) -> None:
        done: list[ReportSchedule] = []
        for schedule in schedules:
            problem = self._perform(request, schedule, what)
            if problem:
                self.message_user(request, problem, messages.WARNING)
            else:
                done.append(schedule)
        if done:
            if what == "resume":
                for schedule in done:
                    schedule.refresh_from_db()
            self.message_user(request, self._done_message(request, what, done), messages.SUCCESS)

    @admin.action(description="Run now", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[ReportSchedule]) -> None:
        self._apply(request, queryset.select_related("organization"), "run")

    @admin.action(description="Send a test to me", permissions=["change"])
    def send_test_to_me(self, request: HttpRequest, queryset: QuerySet[ReportSchedule]) -> None:
        self._apply(request, queryset.select_related("organization"), "test")

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[ReportSchedule]) -> None:
        self._apply(request, queryset.select_related("organization"), "pause")

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[ReportSchedule]) -> None:
        self._apply(request, queryset.select_related("organization"), "resume")

    def get_urls(self) -> list[Any]:
        extra = [
            path(
                "<int:pk>/do/<slug:what>/",
                self.admin_site.admin_view(self.do_view),
                name="scheduling_reportschedule_do",
            )
        ]
        return extra + super().get_urls()

    def do_view(self, request: HttpRequest, pk: int, what: str) -> HttpResponse:
        """The change page's buttons: POST run / test / pause / resume for one schedule."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        schedule = get_object_or_404(self.get_queryset(request).select_related("organization"), pk=pk)
        if what not in _ACTIONS:
            raise PermissionDenied
        if not self._allowed(request, self.write_role, schedule):
            raise PermissionDenied
        self._apply(request, [schedule], what)
        return HttpResponseRedirect(reverse("admin:scheduling_reportschedule_change", args=[schedule.pk]))


# --- runs ---------------------------------------------------------------------------------------


@admin.register(ScheduleRun)
class ScheduleRunAdmin(OrgScopedAdmin):
    """Every run of every schedule the user may see; read only."""

    org_path = "schedule__organization"
    empty_hint = (
        "No report runs yet. A schedule runs at its next time; open a scheduled report and press “Run now” to "
        "run it at once."
    )
    list_display = [
        "scheduled",
        "schedule",
        "trigger",
        "run_status",
        "row_count",
        "missed_slots",
        "deliveries_summary",
        "error_summary",
    ]
    list_filter = ["status", "trigger", "schedule"]
    list_select_related = ["schedule__organization"]
    fields = readonly_fields = (
        "schedule",
        "scheduled",
        "trigger",
        "run_status",
        "started_at",
        "completed_at",
        "export",
        "row_count",
        "file_size",
        "missed_slots",
        "attempts",
        "requested_by",
        "test_recipients",
        "error",
    )
    inlines = [DeliveryInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ScheduleRun]:
        return (
            super()
            .get_queryset(request)
            .select_related("schedule__organization", "export_job", "requested_by")
            .prefetch_related("deliveries")
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Scheduled for", ordering="scheduled_for")
    def scheduled(self, run: ScheduleRun) -> str:
        return _run_time(run)

    @admin.display(description="Status", ordering="status")
    def run_status(self, run: ScheduleRun) -> str:
        return _badge(RUN_COLOURS.get(run.status, "#333"), run.get_status_display())

    @admin.display(description="Deliveries")
    def deliveries_summary(self, run: ScheduleRun) -> str:
        counts: dict[str, int] = {}
        for delivery in run.deliveries.all():
            counts[delivery.get_status_display().lower()] = counts.get(delivery.get_status_display().lower(), 0) + 1
        return ", ".join(f"{n} {status}" for status, n in counts.items()) or EMPTY

    @admin.display(description="Error")
    def error_summary(self, run: ScheduleRun) -> str:
        return (run.error[:120] + ("…" if len(run.error) > 120 else "")) if run.error else EMPTY

    @admin.display(description="Export")
    def export(self, run: ScheduleRun) -> str:
        job = run.export_job
        if job is None:
            return EMPTY
        return format_html(
            '<a href="{}">{} · {}</a>',
            reverse("admin:exports_exportjob_change", args=[job.pk]),
            job.get_status_display(),
            job.file_name or job.pk,
        )

    @admin.display(description="File size")
    def file_size(self, run: ScheduleRun) -> str:
        return filesizeformat(run.file_size_bytes) if run.file_size_bytes is not None else EMPTY

    @admin.display(description="Test sent only to")
    def test_recipients(self, run: ScheduleRun) -> str:
        return ", ".join(run.recipients_override) if run.recipients_override is not None else EMPTY
