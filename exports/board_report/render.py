"""Turn ``BoardReportData`` into HTML (Django template, autoescaped) and a PDF (WeasyPrint)."""

from __future__ import annotations

import datetime as dt
import io
import threading
import zoneinfo
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from django.template.loader import render_to_string
from weasyprint import HTML

from exports.board_report.charts import (
    PRIMARY,
    SECONDARY,
    Series,
    clip,
    column_chart,
    fmt_int,
    hbar_chart,
    line_chart,
    stacked_column_chart,
)
from exports.board_report.data import SEVERITY_ORDER, BoardReportData, Slice
from exports.board_report.fetcher import ASSET_BASE_URL, BundledAssetFetcher, asset_url
from organizations.models import Organization

TEMPLATE = "reports/board_report.html"
STYLESHEET = "board_report.css"
SEVERITY_COLORS = {"critical": "#a61b1b", "high": "#e0782f", "medium": "#e9b949", "low": "#9cb9d9"}
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

T = TypeVar("T")


class BoardReportError(Exception):
    """The board report could not be produced."""


class BoardReportTimeoutError(BoardReportError, TimeoutError):
    """Rendering took longer than its time limit."""


def fmt_date(value: dt.date) -> str:
    """``30 June 2026``, the same in every locale."""
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


def fmt_short_date(value: dt.date) -> str:
    """``30 Jun 2026``."""
    return f"{value.day} {MONTHS[value.month - 1][:3]} {value.year}"


def fmt_datetime(value: dt.datetime) -> str:
    """``30 June 2026, 14:05 EDT``."""
    return f"{fmt_date(value.date())}, {value:%H:%M} {value.tzname()}"


def fmt_pct(value: float | None) -> str:
    """``42.1%``, or an em dash when there is nothing to divide."""
    return "—" if value is None else f"{value * 100:.1f}%"


def fmt_days(value: float | None) -> str:
    """``27.3``, or an em dash."""
    return "—" if value is None else f"{value:.1f}"


def period_text(data: BoardReportData, *, zone: zoneinfo.ZoneInfo) -> str:
    """The reporting period as people say it."""
    if data.period_start and data.period_end:
        return f"{fmt_date(data.period_start)} – {fmt_date(data.period_end)}"
    until = data.period_end or data.end_instant.astimezone(zone).date()
    if data.period_start:
        return f"{fmt_date(data.period_start)} – {fmt_date(until)}"
    return f"All cases to {fmt_date(until)}"


def _rows(slices: list[Slice]) -> list[tuple[str, int, float]]:
    return [(s.label, s.count, s.share) for s in slices]


def board_report_context(
    *, organization: Organization, data: BoardReportData, generated_at: dt.datetime, filters_text: str = ""
) -> dict[str, Any]:
    """The template's context: preformatted text, table rows and inline SVG charts."""
    zone = organization.tzinfo
    local = generated_at.astimezone(zone)
    over_90 = sum(s.count for s in data.open_by_age[3:])  # the 91–180 and over-180 buckets
    kpis = [
        ("Cases in report", fmt_int(data.total_cases), "matching the filters"),
        ("New in period", fmt_int(data.new_in_period), "cases opened"),
        ("Closed in period", fmt_int(data.closed_in_period), "cases closed"),
        ("Open at period end", fmt_int(data.open_at_period_end), f"{fmt_int(over_90)} older than 90 days"),
        (
            "Substantiation rate",
            fmt_pct(data.substantiation_rate),
            f"{fmt_int(data.substantiated)} of {fmt_int(data.decided)} decided closures",
        ),
        ("Median days to close", fmt_days(data.median_days_to_close), "cases closed in period"),
        ("Mean days to close", fmt_days(data.mean_days_to_close), "cases closed in period"),
        ("Anonymous reports", fmt_pct(data.anonymous_share), f"{fmt_int(data.anonymous)} cases"),
    ]
    labels = [m.label for m in data.by_month]
    severities = list(reversed(SEVERITY_ORDER))  # low at the bottom of each column
    charts = {
        "trend": line_chart(
            labels,
            [
                Series("Opened", [m.new for m in data.by_month], PRIMARY),
                Series("Closed", [m.closed for m in data.by_month], SECONDARY),
            ],
            title="Cases opened and closed per period",
        ),
        "severity_trend": stacked_column_chart(
            labels,
            [
                Series(
                    str(sev.label), [m.new_by_severity.get(sev.value, 0) for m in data.by_month], SEVERITY_COLORS[sev]
                )
                for sev in severities
            ],
            title="Cases opened by severity",
        ),
        "category": hbar_chart(
            [(r.category, r.total, r.total / data.total_cases if data.total_cases else 0) for r in data.by_category],
            title="Cases by category",
        ),
        "severity": hbar_chart(_rows(data.by_severity), title="Cases by severity", color="#7a4e9c"),
        "channel": hbar_chart(_rows(data.by_channel), title="Cases by intake channel", color="#3f8f8a"),
        "business_unit": hbar_chart(_rows(data.by_business_unit), title="Cases by business unit"),
        "country": hbar_chart(_rows(data.by_country), title="Cases by country", color="#3f8f8a"),
        "age": column_chart(_rows(data.open_by_age), width=560, height=190, title="Open cases by age", color="#b5651d"),
    }
    categories = [
        {
            "category": row.category,
            "total": fmt_int(row.total),
            "open": fmt_int(row.open_at_end),
            "closed": fmt_int(row.closed_in_period),
            "rate": fmt_pct(row.substantiation_rate),
        }
        for row in data.by_category
    ]
    oldest = [
        {
            "reference": case.reference,
            "title": case.title,
            "category": case.category,
            "severity": case.severity,
            "status": case.status,
            "opened": fmt_short_date(case.created_on),
            "age": fmt_int(case.age_days),
        }
        for case in data.oldest_open
    ]
    return {
        "stylesheet_url": asset_url(STYLESHEET),
        "organization_name": organization.name,
        "organization_short_name": clip(organization.name, 80),
        "period": period_text(data, zone=zone),
        "timezone": organization.timezone,
        "generated_local": fmt_datetime(local),
        "generated_utc": fmt_datetime(generated_at.astimezone(dt.UTC)),
        "generated_iso": generated_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "filters_text": filters_text,
        "empty": data.total_cases == 0,
        "data": data,
        "kpis": kpis,
        "over_90": fmt_int(over_90),
        "summary": {
            "new": fmt_int(data.new_in_period),
            "closed": fmt_int(data.closed_in_period),
            "open": fmt_int(data.open_at_period_end),
            "rate": fmt_pct(data.substantiation_rate),
            "median": fmt_days(data.median_days_to_close),
        },
        "trend_unit": data.trend_unit,
        "charts": charts,
        "categories": categories,
        "oldest": oldest,
        "open_by_age": [(s.label, fmt_int(s.count), fmt_pct(s.share)) for s in data.open_by_age],
        "findings": [(s.label, fmt_int(s.count), fmt_pct(s.share)) for s in data.findings],
        "investigations": fmt_int(data.investigations),
    }


def board_report_html(
    *, organization: Organization, data: BoardReportData, generated_at: dt.datetime, filters_text: str = ""
) -> str:
    """The report as HTML; every value from the data is escaped by the template."""
    context = board_report_context(
        organization=organization, data=data, generated_at=generated_at, filters_text=filters_text
    )
    return render_to_string(TEMPLATE, context)


def _html_to_pdf(html: str) -> tuple[bytes, int]:
    """Lay out and write the PDF with the bundled-assets-only fetcher; returns (bytes, pages)."""
    document = HTML(string=html, base_url=ASSET_BASE_URL, url_fetcher=BundledAssetFetcher()).render()
    buffer = io.BytesIO()
    document.write_pdf(buffer)
    return buffer.getvalue(), len(document.pages)


def _run_with_timeout(work: Callable[[], T], timeout_seconds: float) -> T:
    """Run ``work`` in a daemon thread and wait at most ``timeout_seconds`` for it.

    Python cannot stop a thread: after a timeout the layout goes on in the background
    until it finishes, and its result is dropped. The thread is a daemon so that it never
    keeps the worker process alive; the task runner's own timeout is the hard stop.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="board-report-render", daemon=True)
    thread.start()
    thread.join(timeout_seconds)
    if thread.is_alive():
        raise BoardReportTimeoutError(f"The board report took longer than {timeout_seconds:g} s to render.")
    if "error" in outcome:
        raise BoardReportError(f"The board report could not be rendered: {outcome['error']}") from outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def render_board_report(
    *,
    organization: Organization,
    data: BoardReportData,
    stream: BinaryIO,
    generated_at: dt.datetime,
    filters_text: str = "",
    timeout_seconds: int = 120,
) -> int:
    """Write the board report PDF to ``stream`` and return its page count.

    Nothing is written to ``stream`` unless the whole PDF was produced in time.
    """
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must be an aware datetime.")
    html = board_report_html(organization=organization, data=data, generated_at=generated_at, filters_text=filters_text)
    pdf, pages = _run_with_timeout(lambda: _html_to_pdf(html), timeout_seconds)
    stream.write(pdf)
    return pages
