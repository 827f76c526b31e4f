"""``export``: run an export synchronously through the worker's code path."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.errors import ApplicationError
from exports.models import Dataset, ExportFormat, ExportSource, ExportStatus
from exports.services import export_job_create, export_job_run, exports_storage
from organizations.models import Organization

WAIT_SECONDS = 2.0


class _Bar:
    """A one-line progress bar, drawn only on a terminal."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.total, self.last = stream, 0, 0.0
        self.enabled = stream.isatty()

    def set_total(self, total: int) -> None:
        self.total = total

    def update(self, done: int) -> None:
        if not self.enabled or time.monotonic() - self.last < 0.2:
            return
        self.last = time.monotonic()
        share = done / self.total if self.total else 0
        bar = "#" * int(share * 30)
        self.stream.write(f"\r[{bar:<30}] {done:,}/{self.total:,} rows ({share:.0%})")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


class Command(BaseCommand):
    help = "Run an export now (same code as the workers) and write the file to --output."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--dataset", default="cases", choices=Dataset.values)
        parser.add_argument("--format", required=True, choices=ExportFormat.values)
        parser.add_argument("--filters", default="{}", help='JSON, e.g. \'{"period": "previous_month"}\'')
        parser.add_argument("--columns", default="{}", help="JSON, e.g. '{\"max_investigations\": 2}'")
        parser.add_argument("--output", help="file or folder to write to (default: the current folder)")

    def handle(self, *args: Any, **options: Any) -> None:
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"No organization with slug {options['org']!r}.")
        try:
            filters, columns = json.loads(options["filters"]), json.loads(options["columns"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--filters/--columns must be JSON: {exc}") from exc
        try:
            job = export_job_create(
                organization=org,
                dataset=options["dataset"],
                format=options["format"],
                filters=filters,
                columns=columns,
                source=ExportSource.CLI,
                enqueue_run=False,
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.field or 'error'}: {exc.message}") from exc
        bar = _Bar(sys.stderr)
        export_job_run(job_id=str(job.pk), on_progress=bar.update, on_total=bar.set_total)
        job.refresh_from_db()
        if job.status in (ExportStatus.PENDING, ExportStatus.PROCESSING):
            # Its organization already has EXPORT_MAX_CONCURRENT_PER_ORG exports running: wait
            # for its turn, run it here when it comes (or let a worker that took it finish).
            self.stderr.write(f"Export {job.pk} waits for a free slot of {org.slug}…")
            while job.status in (ExportStatus.PENDING, ExportStatus.PROCESSING):
                time.sleep(WAIT_SECONDS)
                if job.status == ExportStatus.PENDING:
                    export_job_run(job_id=str(job.pk), on_progress=bar.update, on_total=bar.set_total)
                job.refresh_from_db()
        bar.close()
        if job.status != ExportStatus.COMPLETED:
            raise CommandError(f"Export {job.pk} {job.status}: {job.error or 'see the logs'}")
        output = options["output"] or "."
        target = Path(output)
        if target.is_dir() or output.endswith(("/", "\\")):
            target = target / job.file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        with exports_storage().open(job.storage_key, "rb") as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        self.stdout.write(f"{target}\nrows: {job.row_count}\nsha256: {job.sha256}")
