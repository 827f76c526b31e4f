"""``seed_demo``: a realistic, deterministic demo organization of any size."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from cases.seeding import cases_seed
from organizations.models import Role, validate_timezone
from organizations.services import membership_add, membership_update, organization_get_or_create

DEMO_PASSWORD = "dossier-demo"
DEMO_USERS = [("admin", Role.ADMIN), ("officer", Role.OFFICER), ("viewer", Role.VIEWER)]


def _non_negative(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {number}")
    return number


class Command(BaseCommand):
    help = "Create a demo organization with cases, RIUs, investigations, tag slots, schedules and users."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", default="acme", help="organization slug (default: acme)")
        parser.add_argument("--cases", type=_non_negative, default=2000, help="number of cases (default 2000)")
        parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        parser.add_argument("--no-users", action="store_true", help="do not create the demo users")
        parser.add_argument("--anchor", help="latest case date, YYYY-MM-DD (default: today, UTC)")
        parser.add_argument("--days", type=_non_negative, default=730, help="span of case dates in days")
        parser.add_argument("--timezone", default="America/New_York", help="timezone of a new organization")

    def handle(self, *args: Any, **options: Any) -> None:
        anchor = self._anchor(options["anchor"])
        slug = options["org"]
        name = "Acme Corporation" if slug == "acme" else slug.replace("-", " ").title()
        try:
            validate_timezone(options["timezone"])
        except Exception as exc:
            raise CommandError(f"--timezone: {options['timezone']!r} is not an IANA time zone.") from exc
        with transaction.atomic():
            org, _ = organization_get_or_create(slug=slug, name=name, timezone=options["timezone"])
            users = []
            if not options["no_users"]:
                for username, role in DEMO_USERS:
                    membership, _ = membership_add(
                        organization=org,
                        username=username,
                        role=role,
                        password=DEMO_PASSWORD,
                        email=f"{username}@{slug}.example.com",
                    )
                    if role == Role.ADMIN and not membership.identity_access:
                        # The demo admin may reveal identities (with a reason), to try the flow.
                        membership_update(membership=membership, identity_access=True)
                    users.append(membership.user)
        started = time.perf_counter()
        result = cases_seed(
            organization_id=org.pk,
            cases=options["cases"],
            seed=options["seed"],
            anchor=anchor,
            days=options["days"],
            assignee_ids=[u.pk for u in users if u.username != "viewer"],
            email_domain=f"{slug}.example.com",
        )
        # Apps that own other demo objects (tag slots, schedules) add them through a
        # ``seed_demo(organization, owner)`` hook on their AppConfig, idempotently.
        elapsed = time.perf_counter() - started
        owner = next((u for u in users if u.username == "officer"), None)
        for config in apps.get_app_configs():
            hook = getattr(config, "seed_demo", None)
            if hook is not None:
                result.extras.update(hook(organization=org, owner=owner) or {})
        if result.skipped_reason:
            self.stdout.write(f"{org.slug}: {result.skipped_reason}; no cases added.")
        else:
            with transaction.atomic():
                audit_record(
                    organization_id=org.pk,
                    action="demo.seeded",
                    target=org,
                    details={"cases": result.cases, "seed": options["seed"], "anchor": anchor.date().isoformat()},
                )
            rate = result.cases / elapsed if elapsed else 0
            self.stdout.write(
                f"{org.slug}: {result.cases} cases, {result.rius} RIUs, {result.investigations} investigations, "
                f"{result.parties} parties in {elapsed:.1f}s ({rate:,.0f} cases/s)."
            )
        for key, count in result.extras.items():
            self.stdout.write(f"{org.slug}: {count} {key} added.")
        if users:
            self.stdout.write(
                f"Users: {', '.join(u.username for u in users)} (password {DEMO_PASSWORD!r} for new users)"
            )

    @staticmethod
    def _anchor(value: str | None) -> dt.datetime:
        if not value:
            today = timezone.now().date()
            return dt.datetime.combine(today, dt.time(0, 0), tzinfo=dt.UTC)
        try:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(0, 0), tzinfo=dt.UTC)
        except ValueError as exc:
            raise CommandError(f"--anchor must be a date like 2026-11-01, not {value!r}.") from exc
