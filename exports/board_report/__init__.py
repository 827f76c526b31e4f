"""The PDF board report for audit committees: aggregate with ``board_report_data``, then
write the PDF with ``render_board_report``.

The renderer (WeasyPrint) is imported when it is first used: the web processes import
this package for the workspace's charts and never render a PDF."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from exports.board_report.data import BoardReportData, board_report_data

_RENDER = ("BoardReportError", "BoardReportTimeoutError", "render_board_report")


def __getattr__(name: str) -> Any:
    if name in _RENDER:
        return getattr(import_module("exports.board_report.render"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BoardReportData",
    "BoardReportError",
    "BoardReportTimeoutError",
    "board_report_data",
    "render_board_report",
]
