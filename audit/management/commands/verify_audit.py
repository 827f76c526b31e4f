"""``verify_audit [--org SLUG]``: recompute the audit hash chains; non-zero on tampering."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.selectors import audit_chain_verify
from organizations.models import Organization


class Command(BaseCommand):
    help = "Check the audit log's hash chain of one or every organization."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", help="organization slug (default: every organization)")

    def handle(self, *args: Any, **options: Any) -> None:
        orgs = Organization.objects.order_by("slug")
        if options["org"]:
            orgs = orgs.filter(slug=options["org"])
            if not orgs.exists():
                raise CommandError(f"No organization with slug {options['org']!r}.")
        broken = 0
        for org in orgs:
            report = audit_chain_verify(organization_id=org.pk)
            if report.ok:
                self.stdout.write(f"{org.slug}: ok, {report.events} events")
                continue
            broken += 1
            for problem in report.problems:
                self.stderr.write(f"{org.slug}: {problem}")
        if broken:
            raise CommandError(f"Audit chain broken in {broken} organization(s).")
