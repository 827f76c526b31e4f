"""Several dispatchers at once (several qcluster machines): one run per slot."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection

from organizations.models import Role
from organizations.tests.factories import OrganizationFactory, member
from scheduling.dispatch import schedules_dispatch
from scheduling.models import ReportSchedule, ScheduleRun
from scheduling.tests.factories import make_schedule


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_dispatchers_create_exactly_one_run_per_slot(settings):
    settings.TASKS_SYNC = False  # queue the runs; no cluster runs them here
    org = OrganizationFactory(slug="acme")
    owner = member(org, Role.OFFICER)
    schedules = [
        make_schedule(
            org,
            owner,
            name=f"S{i}",
            delivery_method="storage",
            recipients=[],
            storage_path="r",
            schedule={"kind": "daily", "time": "09:00"},
            timezone="UTC",
        )
        for i in range(40)
    ]
    slot = dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC)
    ReportSchedule.objects.update(next_run_at=slot)
    barrier = threading.Barrier(6)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def dispatcher() -> None:
        try:
            barrier.wait()
            results.append(schedules_dispatch(now=slot + dt.timedelta(seconds=5)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r["dispatched"] for r in results) == 40
    assert sum(r["errors"] for r in results) == 0
    assert ScheduleRun.objects.count() == 40
    assert {s.pk for s in schedules} == set(ScheduleRun.objects.values_list("schedule_id", flat=True))
    assert set(ReportSchedule.objects.values_list("next_run_at", flat=True)) == {slot + dt.timedelta(days=1)}
