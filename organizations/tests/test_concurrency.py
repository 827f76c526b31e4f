"""Two admins demoting each other at the same moment leave the organization one admin."""

from __future__ import annotations

import threading

import pytest
from django.db import close_old_connections, connection

from config.errors import ApplicationError
from organizations.models import Membership, Organization, Role
from organizations.services import membership_update
from organizations.tests.factories import OrganizationFactory, member


def _demote_each_other(org: Organization, a, b) -> tuple[list[str], list[Exception]]:
    """Both admins demote the other at once; the fields of refusals and any other errors."""
    start = threading.Barrier(2)
    refused: list[str] = []
    errors: list[Exception] = []

    def demote(actor, target_username: str) -> None:
        try:
            target = Membership.objects.get(organization=org, user__username=target_username)
            start.wait()
            membership_update(membership=target, role=Role.OFFICER, actor=actor)
        except ApplicationError as exc:
            refused.append(exc.field or "")
        except Exception as exc:  # pragma: no cover - reported by the caller
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=demote, args=(a, b.username)),
        threading.Thread(target=demote, args=(b, a.username)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    close_old_connections()
    return refused, errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_admins_demoting_each_other_at_once_keep_one_admin():
    for n in range(10):
        org = OrganizationFactory(slug=f"race-{n}")
        a, b = member(org, Role.ADMIN, f"a{n}"), member(org, Role.ADMIN, f"b{n}")
        refused, errors = _demote_each_other(org, a, b)
        assert errors == []
        assert refused == ["role"]
        assert Membership.objects.filter(organization=org, role=Role.ADMIN).count() == 1
