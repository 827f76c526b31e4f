"""The audit chain stays linear when many threads write one organization at once."""

from __future__ import annotations

import threading

import pytest
from django.db import close_old_connections, connection

from audit.selectors import audit_chain_verify
from audit.services import audit_record
from organizations.tests.factories import OrganizationFactory


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_linear_chain():
    org = OrganizationFactory()
    errors: list[Exception] = []

    def write(n: int) -> None:
        try:
            for i in range(n):
                audit_record(organization_id=org.pk, action="export.downloaded", details={"i": i})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(15,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    close_old_connections()
    assert errors == []
    report = audit_chain_verify(organization_id=org.pk)
    assert report.ok, report.problems
    assert report.events == 90
