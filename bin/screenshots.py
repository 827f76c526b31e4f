"""Regenerate the README's screenshots and the sample board report pages: ``make screenshots``.

Seeds a throwaway SQLite database with ``seed_demo`` (a small, fixed demo), runs two exports
through the worker's code, starts ``runserver`` and a ``qcluster`` on it, signs in as the demo
organization admin in Debian's chromium and saves a full-page PNG of each main page into
``docs/screenshots/``. The board report sample is rendered from the same data and rasterised
page by page into ``docs/board-report/``. Nothing outside the temporary folder is touched
but those two folders. ``--check`` also runs axe-core on every page and lists its findings.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ANCHOR = "2026-06-30"  # the seed's latest case date, so the pictures do not drift with the calendar
PERIOD = (dt.date(2025, 7, 1), dt.date(2026, 6, 30))
GENERATED = dt.datetime(2026, 7, 1, 13, 5, tzinfo=dt.UTC)
USER, PASSWORD = "admin", "dossier-demo"  # seed_demo's organization admin
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}
MAX_HEIGHT = 1800  # long lists are cut here: the top of the page shows what it is


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


@contextlib.contextmanager
def _serving(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """``runserver`` and ``qcluster`` in their own process groups, stopped on the way out."""
    with log.open("wb") as out:
        children = [
            subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for args in (["runserver", "--noreload", f"127.0.0.1:{port}"], ["qcluster"])
        ]
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"{url}/admin/login/", timeout=2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or children[0].poll() is not None:
                        raise SystemExit(f"The server did not start; see {log}") from None
                    time.sleep(0.3)
            yield url
        finally:
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)


def _small(path: Path, image: Any = None) -> None:
    """Save as a 256-colour PNG: screenshots of an admin page lose nothing visible and shrink
    by more than half (no dithering, which would speckle text)."""
    from PIL import Image

    image = (image if image is not None else Image.open(path)).convert("RGB")
    image.quantize(colors=256, dither=Image.Dither.NONE).save(path, optimize=True)


def board_report_pages(out: Path, *, scale: float) -> int:
    """Render the demo organization's board report for a year and save each page as a PNG."""
    import io

    import pypdfium2

    from cases.models import Case
    from exports.board_report import board_report_data, render_board_report
    from exports.filters import filters_describe
    from organizations.models import Organization

    org = Organization.objects.get(slug="acme")
    start, end = PERIOD
    cases = Case.objects.filter(organization=org, created_at__date__gte=start, created_at__date__lte=end)
    data = board_report_data(organization=org, cases=cases, period_start=start, period_end=end)
    buffer = io.BytesIO()
    filters = {"created_from": start.isoformat(), "created_to": end.isoformat()}
    render_board_report(
        organization=org, data=data, stream=buffer, generated_at=GENERATED, filters_text=filters_describe(filters)
    )
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("page-*.png"):
        old.unlink()
    pdf = pypdfium2.PdfDocument(buffer.getvalue())
    for number, page in enumerate(pdf, 1):
        _small(out / f"page-{number}.png", page.render(scale=scale).to_pil())
    return len(pdf)


def _shoot(page: Any, out: Path, name: str, checks: list[str] | None) -> None:
    # Not "networkidle": the workspace and the export list keep asking for progress.
    page.wait_for_load_state("load")
    page.wait_for_timeout(500)
    # Back to the top with nothing focused, so sticky parts (the sidebar) sit where they belong.
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    height = min(MAX_HEIGHT, page.evaluate("document.documentElement.scrollHeight"))
    clip = {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height}
    page.screenshot(path=str(out / f"{name}.png"), full_page=True, clip=clip)
    _small(out / f"{name}.png")
    if checks is not None:
        from tests.browser import accessibility_report

        checks.append(f"{name}: {accessibility_report(page, impacts=None) or 'no violations'}")
    print(f"  {name}.png", flush=True)


def screenshots(url: str, out: Path, *, checks: list[str] | None) -> None:
    """Sign in and save each main page."""
    from exports.models import ExportJob
    from tests.browser import admin_login, browser_page

    job = ExportJob.objects.filter(organization__slug="acme", format="xlsx").latest("created_at")
    out.mkdir(parents=True, exist_ok=True)
    with browser_page(viewport=VIEWPORT) as page:
        admin_login(page, url, USER, PASSWORD)
        pages: list[tuple[str, str, Callable[[], Any] | None]] = [
            ("01-workspace", "/admin/", None),
            ("02-export-list", "/admin/exports/exportjob/", None),
            ("03-export-add", "/admin/exports/exportjob/add/", None),
            ("04-export-job", f"/admin/exports/exportjob/{job.pk}/change/", None),
            ("05-schedule-list", "/admin/scheduling/reportschedule/", None),
            ("06-schedule-add", "/admin/scheduling/reportschedule/add/", lambda: _fill_schedule(page)),
            ("07-tag-slots", "/admin/tagging/tagslot/", None),
            ("08-tag-slot-preview", "/admin/tagging/tagslot/", lambda: _preview_slot(page)),
            ("09-audit-trail", "/admin/audit/auditevent/", None),
            ("10-cases", "/admin/cases/case/", None),
            ("11-ops-status", "/admin/ops/status/", None),
        ]
        for name, path, prepare in pages:
            page.goto(f"{url}{path}")
            if prepare is not None:
                prepare()
            _shoot(page, out, name, checks)


def _fill_schedule(page: Any) -> None:
    from tests.browser import schedule_rule_fill

    page.fill("#id_name", "Month-start case pack")
    page.fill("#id_recipients", "audit-committee@acme.example.com")
    schedule_rule_fill(page, day="1", time="07:30", expect="-01T07:30")


def _preview_slot(page: Any) -> None:
    page.click("tr[data-slot]:not(.configured) a.configure")
    page.wait_for_selector("#id_field_path")
    page.fill("#id_label", "Region")
    page.select_option("#id_source_entity", "case")
    page.fill("#id_field_path", "business_unit")
    page.click("#tag-preview-button")
    page.wait_for_selector("#tag-preview-values", state="visible")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--board-report", type=Path, default=ROOT / "docs" / "board-report")
    parser.add_argument("--cases", type=int, default=1500, help="demo cases to seed (default 1500)")
    parser.add_argument("--check", action="store_true", help="also run axe-core on each page and print the findings")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dossier-screenshots-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3",
                "MEDIA_ROOT": f"{tmp}/media",
                "REDIS_URL": "",
                "EMAIL_URL": "",
                "Q_WORKERS": "1",
                "DEBUG": "True",
                "LOG_LEVEL": "WARNING",  # WeasyPrint logs every layout step at INFO
            }
        )
        os.environ.update(env)
        print(f"Seeding {args.cases} demo cases…", flush=True)
        _manage(env, "migrate", "--noinput")
        _manage(env, "seed_demo", "--cases", str(args.cases), "--anchor", ANCHOR)
        for fmt, dataset in (("xlsx", "cases"), ("pdf", "board_report")):
            _manage(env, "export", "--org", "acme", "--dataset", dataset, "--format", fmt, "--output", f"{tmp}/out")

        import django

        django.setup()
        pages = board_report_pages(args.board_report, scale=1.25)
        print(f"  {args.board_report}/page-1…{pages}.png", flush=True)

        checks: list[str] | None = [] if args.check else None
        with _serving(env, _free_port(), Path(tmp) / "server.log") as url:
            screenshots(url, args.out, checks=checks)
        for line in checks or []:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
