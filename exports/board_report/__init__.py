"""The PDF board report for audit committees: aggregate with ``board_report_data``, then
write the PDF with ``render_board_report``."""

from __future__ import annotations

from exports.board_report.data import BoardReportData, board_report_data
from exports.board_report.render import BoardReportError, BoardReportTimeoutError, render_board_report

__all__ = [
    "BoardReportData",
    "BoardReportError",
    "BoardReportTimeoutError",
    "board_report_data",
    "render_board_report",
]
