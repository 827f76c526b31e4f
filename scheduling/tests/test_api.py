"""Schedule API: CRUD, bad input (400, nothing stored), roles, tenancy, preview, run now."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from organizations.models import DeliveryPolicy, Role
from organizations.tests.factories import OrganizationFactory, member
from scheduling.models import ReportSchedule, ScheduleRun

pytestmark = pytest.mark.django_db

BODY = {
    "name": "Monthly board pack",
    "description": "",
    "export": {"dataset": "cases", "format": "xlsx", "filters": {"period": "previous_month"}, "columns": {}},
    "schedule": {"kind": "monthly", "time": "08:00", "day_of_month": "last"},
    "timezone": "Europe/London",
    "delivery": {"method": "email", "recipients": ["audit@example.com"], "attach_file": True, "storage_path": ""},
    "skip_if_empty": False,
    "is_active": True,
}


@pytest.fixture
def org():
    return OrganizationFactory(slug="acme")


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def officer(org):
    return api(member(org, Role.OFFICER, username="olivia"))


def test_create_read_update_delete(officer, org):
    created = officer.post("/api/v1/orgs/acme/schedules/", BODY, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["schedule"] == {"kind": "monthly", "time": "08:00", "day_of_month": "last"}
    assert body["next_run_at"] and body["last_run_at"] is None and body["last_run_status"] is None
    sid = body["id"]
    assert officer.get(f"/api/v1/orgs/acme/schedules/{sid}/").json()["delivery"]["recipients"] == ["audit@example.com"]
    patched = officer.patch(
        f"/api/v1/orgs/acme/schedules/{sid}/", {"schedule": {"kind": "daily", "time": "06:15"}}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["schedule"] == {"kind": "daily", "time": "06:15"}
    assert patched.json()["delivery"]["method"] == "email"  # untouched by a partial change
    replaced = officer.put(f"/api/v1/orgs/acme/schedules/{sid}/", {**BODY, "name": "Renamed"}, format="json")
    assert replaced.status_code == 200 and replaced.json()["name"] == "Renamed"
    assert officer.get("/api/v1/orgs/acme/schedules/").json()["count"] == 1
    assert officer.delete(f"/api/v1/orgs/acme/schedules/{sid}/").status_code == 204
    assert not ReportSchedule.objects.exists()
    actions = list(AuditEvent.objects.filter(action__startswith="schedule.").values_list("action", flat=True))
    assert sorted(actions) == sorted(["schedule.created", "schedule.updated", "schedule.updated", "schedule.deleted"])


def messages_at(body, field):
    """The messages a 400 body holds for a dotted field, checking it names that field and no other."""
    for key in field.split("."):
        assert isinstance(body, dict) and list(body) == [key], body
        body = body[key]
    assert isinstance(body, list) and body and all(isinstance(m, str) for m in body), body
    return body


STORAGE = {"method": "storage", "storage_path": "reports/board"}
IDENTITY = {"identity": "include", "identity_reason": "Board asked for names"}


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"schedule": "monthly"}, "schedule", 'must be an object with a "kind"'),
        ({"schedule": {"kind": "hourly"}}, "schedule.kind", "daily, weekly, monthly or cron"),
        ({"schedule": {}}, "schedule.kind", "daily, weekly, monthly or cron"),
        ({"schedule": {"kind": "daily", "time": "25:00"}}, "schedule.time", "24-hour clock"),
        ({"schedule": {"kind": "daily"}}, "schedule.time", "24-hour clock"),
        ({"schedule": {"kind": "weekly", "time": "8h", "day_of_week": 1}}, "schedule.time", "24-hour clock"),
        ({"schedule": {"kind": "weekly", "time": "08:00", "day_of_week": 0}}, "schedule.day_of_week", "1 (Monday)"),
        ({"schedule": {"kind": "weekly", "time": "08:00"}}, "schedule.day_of_week", "1 (Monday)"),
        ({"schedule": {"kind": "monthly", "time": "08:00", "day_of_month": 32}}, "schedule.day_of_month", "1 to 31"),
        (
            {"schedule": {"kind": "monthly", "time": "08:00", "day_of_month": "first"}},
            "schedule.day_of_month",
            '"last"',
        ),
        ({"schedule": {"kind": "monthly", "time": "", "day_of_month": 1}}, "schedule.time", "24-hour clock"),
        ({"schedule": {"kind": "cron", "cron": "0 0 31 2 *"}}, "schedule.cron", "never runs"),
        ({"schedule": {"kind": "cron", "cron": "*/0 * * * *"}}, "schedule.cron", "at least 1"),
        ({"schedule": {"kind": "cron", "cron": "61 * * * *"}}, "schedule.cron", "minute 0-59"),
        ({"schedule": {"kind": "cron", "cron": "* * *"}}, "schedule.cron", "exactly five fields"),
        ({"schedule": {"kind": "cron"}}, "schedule.cron", "exactly five fields"),
        ({"schedule": {"kind": "cron", "cron": "* 3-3 * * *"}}, "schedule.cron", "starts and ends on the same"),
        ({"schedule": {"kind": "cron", "cron": "0 0 1 * 0-6"}}, "schedule.cron", "matches every day"),
        ({"schedule": {"kind": "cron", "cron": "H * * * *"}}, "schedule.cron", "hashed (H)"),
        ({"timezone": "Mars/Olympus"}, "timezone", "is not a known IANA timezone"),
        ({"delivery": {"method": "email", "recipients": []}}, "delivery.recipients", "at least one recipient"),
        ({"delivery": {"method": "email", "recipients": ["not-an-email"]}}, "delivery.recipients", "not a valid"),
        (
            {"delivery": {"method": "email", "recipients": [f"r{n}@example.com" for n in range(51)]}},
            "delivery.recipients",
            "At most 50 recipients",
        ),
        ({"delivery": {"method": "pigeon", "recipients": ["a@example.com"]}}, "delivery.method", "Unknown delivery"),
        ({"delivery": {"method": "storage", "storage_path": "../etc"}}, "delivery.storage_path", "storage_path"),
        ({"delivery": {"method": "storage", "storage_path": ""}}, "delivery.storage_path", "storage_path"),
        ({"delivery": {**STORAGE, "protection": "rot13"}}, "delivery.protection", "not a valid choice"),
        ({"delivery": {**STORAGE, "protection": "encrypted_zip"}}, "delivery.passphrase", "encrypted ZIP needs"),
        (
            {"delivery": {**STORAGE, "protection": "encrypted_zip", "passphrase": "short"}},
            "delivery.passphrase",
            "at least 12 characters",
        ),
        ({"export": {"dataset": "widgets", "format": "csv"}}, "export.dataset", "Unknown dataset"),
        ({"export": {"dataset": "cases", "format": "docx"}}, "export.format", "Unknown format"),
        ({"export": {"dataset": "board_report", "format": "csv"}}, "export.format", "PDF is only for board_report"),
        (
            {"export": {"dataset": "cases", "format": "csv", "filters": {"period": "fortnight"}}},
            "export.filters",
            "fortnight",
        ),
        ({"export": {"dataset": "cases", "format": "csv", "columns": {"colour": 1}}}, "export.columns", "'colour'"),
        (
            {"export": {"dataset": "cases", "format": "csv", "columns": {"identity": "reveal"}}},
            "export.columns.identity",
            "identity must be one of",
        ),
        (
            {"export": {"dataset": "cases", "format": "csv", "columns": {"identity": "include"}}},
            "export.columns.identity_reason",
            "identity_reason must be",
        ),
        (
            {"export": {"dataset": "cases", "format": "csv", "columns": IDENTITY}},
            "export.columns",
            "can reveal identities only",
        ),
        ({"name": ""}, "name", "blank"),
    ],
)
def test_bad_input_is_400_naming_the_exact_field_and_stores_nothing(officer, change, field, says):
    response = officer.post("/api/v1/orgs/acme/schedules/", {**BODY, **change}, format="json")
    assert response.status_code == 400, response.content
    assert says in " ".join(messages_at(response.json(), field))
    assert not ReportSchedule.objects.exists()
    assert not AuditEvent.objects.filter(action="schedule.created").exists()


def test_bad_change_is_400_naming_the_exact_field_and_changes_nothing(officer):
    sid = officer.post("/api/v1/orgs/acme/schedules/", BODY, format="json").json()["id"]
    response = officer.patch(
        f"/api/v1/orgs/acme/schedules/{sid}/", {"schedule": {"kind": "daily", "time": "7pm"}}, format="json"
    )
    assert response.status_code == 400
    assert "24-hour clock" in messages_at(response.json(), "schedule.time")[0]
    assert ReportSchedule.objects.get(pk=sid).schedule == BODY["schedule"]


def test_plain_delivery_under_a_protected_policy_is_400_on_delivery_protection(officer, org):
    org.delivery_policy = DeliveryPolicy.PROTECTED
    org.save()
    response = officer.post("/api/v1/orgs/acme/schedules/", BODY, format="json")
    assert response.status_code == 400
    assert "sends reports protected only" in messages_at(response.json(), "delivery.protection")[0]
    assert not ReportSchedule.objects.exists()


def test_recipients_outside_allowed_domains_are_400(officer, org):
    org.allowed_recipient_domains = ["acme.com"]
    org.save()
    bad = officer.post(
        "/api/v1/orgs/acme/schedules/",
        {**BODY, "delivery": {"method": "email", "recipients": ["cfo@acme.com", "leak@gmail.com"]}},
        format="json",
    )
    assert bad.status_code == 400 and "leak@gmail.com" in messages_at(bad.json(), "delivery.recipients")[0]
    ok = officer.post(
        "/api/v1/orgs/acme/schedules/",
        {**BODY, "delivery": {"method": "email", "recipients": ["cfo@ACME.com"]}},
        format="json",
    )
    assert ok.status_code == 201


def test_viewer_reads_but_cannot_write_and_other_org_is_404(org, officer):
    sid = officer.post("/api/v1/orgs/acme/schedules/", BODY, format="json").json()["id"]
    viewer = api(member(org, Role.VIEWER))
    assert viewer.get(f"/api/v1/orgs/acme/schedules/{sid}/").status_code == 200
    assert viewer.get(f"/api/v1/orgs/acme/schedules/{sid}/runs/").status_code == 200
    for method, path in [
        ("post", ""),
        ("patch", f"{sid}/"),
        ("delete", f"{sid}/"),
        ("post", f"{sid}/pause/"),
        ("post", f"{sid}/run/"),
    ]:
        assert getattr(viewer, method)(f"/api/v1/orgs/acme/schedules/{path}", {}, format="json").status_code == 403
    outsider = api(member(OrganizationFactory(slug="globex"), Role.ADMIN))
    for method, path in [("get", ""), ("get", f"{sid}/"), ("post", f"{sid}/run/"), ("get", f"{sid}/runs/")]:
        assert getattr(outsider, method)(f"/api/v1/orgs/acme/schedules/{path}").status_code == 404
    assert outsider.get(f"/api/v1/orgs/globex/schedules/{sid}/").status_code == 404


def test_pause_and_resume_recompute_next_run(officer):
    sid = officer.post("/api/v1/orgs/acme/schedules/", BODY, format="json").json()["id"]
    paused = officer.post(f"/api/v1/orgs/acme/schedules/{sid}/pause/").json()
    assert paused["is_active"] is False and paused["next_run_at"] is None
    resumed = officer.post(f"/api/v1/orgs/acme/schedules/{sid}/resume/").json()
    assert resumed["is_active"] is True and resumed["next_run_at"]


def test_preview_lists_five_runs_after_with_local_offsets(officer):
    response = officer.post(
        "/api/v1/orgs/acme/schedules/preview/",
        {"schedule": {"kind": "daily", "time": "02:30"}, "timezone": "Europe/Berlin", "after": "2026-03-27T12:00:00Z"},
        format="json",
    )
    assert response.json()["next_runs"] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist: first instant after
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
        "2026-04-01T02:30:00+02:00",
    ]
    fall = officer.post(
        "/api/v1/orgs/acme/schedules/preview/",
        {
            "schedule": {"kind": "daily", "time": "01:30"},
            "timezone": "America/New_York",
            "after": "2026-10-31T12:00:00Z",
        },
        format="json",
    ).json()["next_runs"]
    assert fall[:3] == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"]
    bad = officer.post(
        "/api/v1/orgs/acme/schedules/preview/",
        {"schedule": {"kind": "cron", "cron": "0 0 31 2 *"}, "timezone": "UTC"},
        format="json",
    )
    assert bad.status_code == 400 and "never runs" in messages_at(bad.json(), "schedule.cron")[0]


def test_run_now_is_202_with_a_manual_run(officer, django_capture_on_commit_callbacks):
    sid = officer.post(
        "/api/v1/orgs/acme/schedules/",
        {**BODY, "delivery": {"method": "storage", "storage_path": "reports"}},
        format="json",
    ).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = officer.post(f"/api/v1/orgs/acme/schedules/{sid}/run/", {}, format="json")
    assert response.status_code == 202
    run = ScheduleRun.objects.get(pk=response.json()["run_id"])
    assert run.trigger == "manual" and run.status == "success"
    runs = officer.get(f"/api/v1/orgs/acme/schedules/{sid}/runs/").json()["results"]
    assert runs[0]["id"] == str(run.pk) and runs[0]["deliveries"][0]["status"] == "sent"
    assert runs[0]["export_id"] == str(run.export_job_id)
