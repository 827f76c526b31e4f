"""LibreOffice, headless: a reader of our files that we did not write."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

needs_office = pytest.mark.skipif(shutil.which("soffice") is None, reason="needs LibreOffice (make office)")


def office_csv(workbook: Path, profile: Path) -> str:
    """The first sheet of ``workbook`` as LibreOffice converts it to UTF-8 CSV."""
    result = subprocess.run(
        [
            "soffice",
            "--headless",
            "--norestore",
            f"-env:UserInstallation=file://{profile}",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,76",
            "--outdir",
            str(workbook.parent),
            str(workbook),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return workbook.with_suffix(".csv").read_text(encoding="utf-8")
