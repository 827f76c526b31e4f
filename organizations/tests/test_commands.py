from __future__ import annotations

import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from organizations.models import Membership
from organizations.tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def test_add_member_creates_staff_user_with_role_and_audits():
    org = OrganizationFactory(slug="acme")
    call_command("add_member", "carol", "--org", "acme", "--role", "officer", "--password", "s3cret-pass")
    user = get_user_model().objects.get(username="carol")
    assert user.is_staff and user.check_password("s3cret-pass")
    assert Membership.objects.get(user=user, organization=org).role == "officer"
    assert AuditEvent.objects.filter(organization=org, action="membership.created").count() == 1


def test_add_member_keeps_existing_password_and_changes_role():
    OrganizationFactory(slug="acme")
    call_command("add_member", "carol", "--org", "acme", "--role", "viewer", "--password", "first-pass")
    call_command("add_member", "carol", "--org", "acme", "--role", "admin", "--password", "other-pass")
    user = get_user_model().objects.get(username="carol")
    assert user.check_password("first-pass")
    assert user.memberships.get().role == "admin"


def test_add_member_unknown_org_is_an_error_and_creates_nothing():
    with pytest.raises(CommandError, match="No organization with slug 'ghost'"):
        call_command("add_member", "dave", "--org", "ghost", "--role", "viewer")
    assert not get_user_model().objects.filter(username="dave").exists()


def test_add_member_bad_role_exits_non_zero_with_one_line():
    result = subprocess.run(
        [sys.executable, "manage.py", "add_member", "dave", "--org", "acme", "--role", "boss"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "invalid choice: 'boss'" in result.stderr.strip().splitlines()[-1]


def test_debug_false_without_secret_key_refuses_to_start_with_one_line():
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS")}
    env.update(DEBUG="False", DJANGO_SETTINGS_MODULE="config.settings")
    result = subprocess.run([sys.executable, "manage.py", "check"], capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "dossier: configuration error: DEBUG=False needs SECRET_KEY and ALLOWED_HOSTS set in the environment."
    )
