"""The admin's schedule form: friendly inputs in, the service's flat fields out.

The form only gathers and shapes the inputs; ``schedule_validate`` (the same check the API
runs) decides what is valid, and its errors are put back on the input they are about.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from config.errors import ApplicationError
from exports.filters import PERIODS
from exports.models import Dataset, ExportFormat
from organizations.models import Organization
from scheduling.models import ReportSchedule
from scheduling.services import schedule_validate

KIND_CHOICES = [("daily", "Daily"), ("weekly", "Weekly"), ("monthly", "Monthly"), ("cron", "Cron expression")]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DAY_OF_WEEK_CHOICES = [(str(n), name) for n, name in enumerate(WEEKDAYS, start=1)]
DAY_OF_MONTH_CHOICES = [("last", "Last day of the month"), *((str(n), str(n)) for n in range(1, 32))]
PERIOD_CHOICES = [("", "— every case, no date limit —"), *((p, p.replace("_", " ").capitalize()) for p in PERIODS)]
# Offered in the timezone input's datalist; any IANA name the server knows is accepted.
COMMON_TIMEZONES = (
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Brussels",
    "Europe/Amsterdam",
    "Europe/Berlin",
    "Europe/Zurich",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Vienna",
    "Europe/Stockholm",
    "Europe/Oslo",
    "Europe/Copenhagen",
    "Europe/Helsinki",
    "Europe/Warsaw",
    "Europe/Prague",
    "Europe/Athens",
    "Europe/Bucharest",
    "Europe/Istanbul",
    "Europe/Kyiv",
    "Europe/Moscow",
    "Africa/Casablanca",
    "Africa/Lagos",
    "Africa/Cairo",
    "Africa/Johannesburg",
    "Africa/Nairobi",
    "Asia/Jerusalem",
    "Asia/Riyadh",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Jakarta",
    "Asia/Singapore",
    "Asia/Hong_Kong",
    "Asia/Shanghai",
    "Asia/Taipei",
    "Asia/Manila",
    "Asia/Seoul",
    "Asia/Tokyo",
    "Australia/Perth",
    "Australia/Adelaide",
    "Australia/Brisbane",
    "Australia/Sydney",
    "Australia/Melbourne",
    "Pacific/Auckland",
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Vancouver",
    "America/Denver",
    "America/Phoenix",
    "America/Chicago",
    "America/Mexico_City",
    "America/Toronto",
    "America/New_York",
    "America/Halifax",
    "America/Bogota",
    "America/Lima",
    "America/Santiago",
    "America/Argentina/Buenos_Aires",
    "America/Sao_Paulo",
)
_RECIPIENT_SPLIT_RE = re.compile(r"[\s,;]+")
# The service's (dotted) error field → the form input it is about. A field not listed, or an
# input this form does not have, puts the error on the whole form.
INPUT_FOR_FIELD = {
    "name": "name",
    "timezone": "timezone",
    "export.dataset": "dataset",
    "export.format": "format",
    "export.filters": "period",
    "schedule.kind": "kind",
    "schedule.time": "time",
    "schedule.day_of_week": "day_of_week",
    "schedule.day_of_month": "day_of_month",
    "schedule.cron": "cron",
    "delivery.method": "delivery_method",
    "delivery.recipients": "recipients",
    "delivery.storage_path": "storage_path",
    "delivery.protection": "protection",
    "delivery.passphrase": "passphrase",
}


class TimezoneInput(forms.TextInput):
    """A text input offering common IANA zone names through a datalist."""

    datalist_id = "schedule-timezones"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(
            {
                "list": self.datalist_id,
                "autocomplete": "off",
                "size": 32,
                "placeholder": "e.g. Europe/London",
                **(attrs or {}),
            }
        )

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        options = format_html_join("", '<option value="{}"></option>', ((zone,) for zone in COMMON_TIMEZONES))
        return format_html(
            '{}<datalist id="{}">{}</datalist>', super().render(name, value, attrs, renderer), self.datalist_id, options
        )


def recipients_split(text: str) -> list[str]:
    """Addresses from a textarea: one per line, or separated by commas, semicolons or spaces."""
    return [part for part in _RECIPIENT_SPLIT_RE.split(text or "") if part]


class ReportScheduleForm(forms.ModelForm[ReportSchedule]):
    """Name, export, rule, timezone and delivery of a schedule, in plain inputs."""

    dataset = forms.ChoiceField(
        choices=Dataset.choices,
        initial=Dataset.CASES,
        help_text="One row per case, one row per investigation, or the board report (a PDF).",
    )
    format = forms.ChoiceField(
        choices=ExportFormat.choices,
        initial=ExportFormat.XLSX,
        help_text="The file the recipients get; the board report is always a PDF.",
    )
    period = forms.ChoiceField(
        choices=PERIOD_CHOICES,
        required=False,
        initial="previous_month",
        label="Cases created in",
        help_text="Worked out at each run, on the schedule's calendar: a run on 1 March with "
        "“previous month” exports February.",
    )
    kind = forms.ChoiceField(
        choices=KIND_CHOICES,
        initial="monthly",
        label="Repeats",
        help_text="How often the report goes out; the next five runs are shown below as you choose.",
    )
    time = forms.CharField(
        required=False,
        initial="08:00",
        label="At (local time)",
        widget=forms.TextInput(attrs={"type": "time", "step": 60}),
        help_text="On the schedule's local clock (below).",
    )
    day_of_week = forms.ChoiceField(
        choices=DAY_OF_WEEK_CHOICES, required=False, initial="1", label="On", help_text="The day of a weekly report."
    )
    day_of_month = forms.ChoiceField(
        choices=DAY_OF_MONTH_CHOICES,
        required=False,
        initial="last",
        label="On day",
        help_text="29, 30 and 31 run on the last day of shorter months.",
    )
    cron = forms.CharField(
        required=False,
        label="Cron expression",
        widget=forms.TextInput(attrs={"size": 32, "placeholder": "*/15 9-17 * * 1-5", "autocomplete": "off"}),
        help_text="Five fields: minute, hour, day of month, month, day of week; read on the schedule's local clock.",
    )
    recipients = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 50}),
        help_text="Email addresses, one per line or separated by commas.",
    )
    passphrase = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        label="ZIP passphrase",
        help_text="For an encrypted ZIP: at least 12 characters, agreed with the recipients by another channel. "
        "Never shown again; leave empty to keep the current one.",
    )

    class Meta:
        model = ReportSchedule
        fields = [
            "organization",
            "name",
            "description",
            "dataset",
            "format",
            "timezone",
            "delivery_method",
            "recipients",
            "attach_file",
            "protection",
            "storage_path",
            "skip_if_empty",
            "is_active",
        ]
        widgets = {
            "timezone": TimezoneInput(),
            "description": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "storage_path": forms.TextInput(attrs={"size": 40, "placeholder": "reports/board"}),
        }
        labels = {"is_active": "Active", "timezone": "Timezone"}
        help_texts = {
            "organization": "Whose cases the report holds.",
            "name": "How the report is called in lists, emails and file names.",
            "description": "Optional: what the report is for, shown to the other members.",
            "delivery_method": "Email sends a download link (and the file when allowed); storage saves the file "
            "in the exports storage.",
            "timezone": "An IANA name such as Europe/London: the rule is read on this wall clock, summer time "
            "included.",
            "storage_path": "A folder in the exports storage, for storage delivery.",
            "attach_file": "Attach the file to the email when it is small enough; a download link is always sent.",
            "skip_if_empty": "Send nothing when the export has no rows.",
            "is_active": "Untick to pause the schedule.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance.pk and not self.is_bound:
            spec = instance.schedule or {}
            self.initial.update(
                {
                    "kind": spec.get("kind", "monthly"),
                    "time": spec.get("time", ""),
                    "day_of_week": str(spec.get("day_of_week", "1")),
                    "day_of_month": str(spec.get("day_of_month", "last")),
                    "cron": spec.get("cron", ""),
                    "period": (instance.filters or {}).get("period") or "",
                    "recipients": "\n".join(instance.recipients or []),
                }
            )

    def clean_recipients(self) -> list[str]:
        return recipients_split(self.cleaned_data.get("recipients") or "")

    # --- the service's view of the form ----------------------------------------------

    def organization(self) -> Organization | None:
        """The chosen organization (fixed once the schedule exists)."""
        if self.instance.pk:
            return self.instance.organization
        chosen = self.cleaned_data.get("organization")
        return chosen if isinstance(chosen, Organization) else None

    def schedule_spec(self) -> dict[str, Any]:
        """The ``schedule`` JSON of the chosen rule."""
        data = self.cleaned_data
        kind = data.get("kind") or ""
        if kind == "cron":
            return {"kind": kind, "cron": data.get("cron") or ""}
        spec: dict[str, Any] = {"kind": kind, "time": data.get("time") or ""}
        if kind == "weekly":
            spec["day_of_week"] = int(data.get("day_of_week") or 1)
        elif kind == "monthly":
            day = data.get("day_of_month") or "last"
            spec["day_of_month"] = day if day == "last" else int(day)
        return spec

    def filters(self) -> dict[str, Any]:
        """The stored filters with the chosen period; other filters set through the API are kept."""
        filters = {k: v for k, v in (self.instance.filters or {}).items() if k != "period"} if self.instance.pk else {}
        if self.cleaned_data.get("period"):
            filters["period"] = self.cleaned_data["period"]
        return filters

    def schedule_data(self) -> dict[str, Any]:
        """The flat model fields ``schedule_create``/``schedule_update`` take."""
        data = self.cleaned_data
        return {
            "name": data.get("name", ""),
            "description": data.get("description", ""),
            "dataset": data.get("dataset"),
            "format": data.get("format"),
            "filters": self.filters(),
            "columns": self.instance.columns if self.instance.pk else {},
            "schedule": self.schedule_spec(),
            "timezone": (data.get("timezone") or "").strip(),
            "delivery_method": data.get("delivery_method"),
            "recipients": data.get("recipients") or [],
            "attach_file": data.get("attach_file", False),
            "protection": data.get("protection") or "none",
            **({"passphrase": data["passphrase"]} if data.get("passphrase") else {}),
            "storage_path": data.get("storage_path", ""),
            "skip_if_empty": data.get("skip_if_empty", False),
            "is_active": data.get("is_active", False),
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        organization = self.organization()
        if self.errors or organization is None:
            return cleaned
        try:
            schedule_validate(
                organization=organization,
                data=self.schedule_data(),
                owner=self.instance.owner if self.instance.pk else None,
                has_passphrase=bool(self.instance.passphrase_encrypted),
            )
        except ApplicationError as exc:
            self.add_error(self._field_for(exc), exc.message)
        return cleaned

    def _field_for(self, exc: ApplicationError) -> str | None:
        """The input an ApplicationError from the service is about (None: the whole form)."""
        name = INPUT_FOR_FIELD.get(exc.field or "")
        return name if name in self.fields else None


__all__ = ["COMMON_TIMEZONES", "ReportScheduleForm", "TimezoneInput", "recipients_split"]
