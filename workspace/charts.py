"""The workspace's two small charts, drawn on the server as inline SVG (no script, no build)."""

from __future__ import annotations

from django.utils.safestring import SafeString

from exports.board_report.charts import Series as ChartSeries
from exports.board_report.charts import stacked_column_chart
from exports.models import ExportFormat
from scheduling.models import DeliveryStatus
from workspace.selectors import Series

#: Distinct on white and from each other for most colour vision; the legend names each.
FORMAT_COLOURS: dict[str, str] = {
    ExportFormat.XLSX: "#1d6f42",
    ExportFormat.CSV: "#2f5d8a",
    ExportFormat.JSONL: "#8a5a00",
    ExportFormat.PARQUET: "#6b3fa0",
    ExportFormat.PDF: "#b02a37",
}
OUTCOME_COLOURS: dict[str, str] = {
    DeliveryStatus.SENT: "#1d6f42",
    DeliveryStatus.FAILED: "#b02a37",
    DeliveryStatus.PENDING: "#6c757d",
}


def exports_per_day_chart(series: Series) -> SafeString:
    """Stacked columns: exports requested per day, one layer per format."""
    layers = [
        ChartSeries(name=ExportFormat(fmt).label, values=values, color=FORMAT_COLOURS.get(fmt, "#444"))
        for fmt, values in series.counts.items()
    ]
    labels = [f"{day:%d %b}" for day in series.labels]
    title = f"Exports per day over the last {len(labels)} days, by format: {series.total} in all"
    return stacked_column_chart(labels, layers, width=560, height=220, title=title)


def deliveries_per_week_chart(series: Series) -> SafeString:
    """Stacked columns: report deliveries per week, one layer per outcome."""
    layers = [
        ChartSeries(name=DeliveryStatus(status).label, values=values, color=OUTCOME_COLOURS[status])
        for status, values in series.counts.items()
    ]
    labels = [f"w/c {day:%d %b}" for day in series.labels]
    title = f"Report deliveries per week over the last {len(labels)} weeks, by outcome: {series.total} in all"
    return stacked_column_chart(labels, layers, width=560, height=220, title=title)
