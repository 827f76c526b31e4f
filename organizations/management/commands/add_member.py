"""``add_member --org SLUG USERNAME --role ROLE``: give a user a role in an organization."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.errors import ApplicationError
from organizations.models import Organization, Role
from organizations.services import membership_add


class Command(BaseCommand):
    help = "Create the user if missing and give them a role in the organization."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--password", help="password for a new user (an existing user keeps theirs)")
        parser.add_argument("--email")

    def handle(self, *args: Any, **options: Any) -> None:
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"No organization with slug {options['org']!r}.")
        try:
            membership, created = membership_add(
                organization=org,
                username=options["username"],
                role=options["role"],
                password=options["password"],
                email=options["email"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        verb = "added to" if created else "now has that role in"
        self.stdout.write(f"{membership.user.username} {verb} {org.slug} as {membership.role}.")
