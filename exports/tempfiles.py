"""Where a worker writes an export before storage takes it."""

from __future__ import annotations

from django.conf import settings


def temporary_dir() -> str | None:
    """The folder of an export's temporary files (the file, its PostgreSQL parts, its XLSX
    sheets): ``EXPORTS_TMP_DIR``, or the system's temporary folder when that is empty."""
    return getattr(settings, "EXPORTS_TMP_DIR", "") or None
