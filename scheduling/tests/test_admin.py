"""The schedule admin: scoping, the form through the services, actions and run history."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from config.errors import ApplicationError
from organizations.models import DeliveryPolicy, Role
from organizations.tests.factories import OrganizationFactory, member
from scheduling.admin import local_time, schedule_summary, utc_time
from scheduling.models import Delivery, DeliveryStatus, ReportSchedule, RunStatus, RunTrigger, ScheduleRun
from scheduling.services import schedule_create, schedule_pause

pytestmark = pytest.mark.django_db

LIST = "/admin/scheduling/reportschedule/"
ADD = f"{LIST}add/"


def flat(**overrides):
    data = {
        "name": "Monthly board pack",
        "dataset": "cases",
        "format": "csv",
        "filters": {"period": "previous_month"},
        "columns": {},
        "schedule": {"kind": "monthly", "time": "08:00", "day_of_month": "last"},
        "timezone": "Europe/London",
        "delivery_method": "email",
        "recipients": ["audit@example.com"],
    }
    data.update(overrides)
    return data


def form_data(org, **overrides):
    data = {
        "organization": org.pk,
        "name": "Board pack",
        "description": "",
        "dataset": "cases",
        "format": "csv",
        "period": "previous_month",
        "kind": "monthly",
        "time": "08:00",
        "day_of_week": "1",
        "day_of_month": "last",
        "cron": "",
        "timezone": "Europe/London",
        "delivery_method": "email",
        "recipients": "audit@example.com\nboard@example.com, cfo@example.com",
        "attach_file": "on",
        "protection": "none",
        "storage_path": "",
        "is_active": "on",
        # The run history inline is not on the add page; the change page sends its management form.
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def act(client, action, *schedules):
    return client.post(LIST, {"action": action, "_selected_action": [s.pk for s in schedules]}, follow=True)


@pytest.fixture
def setup():
    org = OrganizationFactory(name="Acme", slug="acme")
    other = OrganizationFactory(name="Globex", slug="globex")
    officer = member(org, Role.OFFICER, username="olivia")
    globex_officer = member(other, Role.OFFICER, username="gary")
    ours = schedule_create(organization=org, owner=officer, data=flat())
    theirs = schedule_create(
        organization=other, owner=globex_officer, data=flat(name="Globex secret pack", recipients=["x@globex.com"])
    )
    client = Client()
    client.force_login(officer)
    return org, other, officer, ours, theirs, client


# --- display helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ({"kind": "monthly", "time": "08:00", "day_of_month": "last"}, "Monthly on the last day at 08:00"),
        (
            {"kind": "monthly", "time": "08:00", "day_of_month": 31},
            "Monthly on day 31 (or the month's last day) at 08:00",
        ),
        ({"kind": "monthly", "time": "06:30", "day_of_month": 1}, "Monthly on day 1 at 06:30"),
        ({"kind": "weekly", "time": "08:00", "day_of_week": 1}, "Weekly on Monday at 08:00"),
        ({"kind": "weekly", "time": "08:00", "day_of_week": 7}, "Weekly on Sunday at 08:00"),
        ({"kind": "daily", "time": "23:59"}, "Daily at 23:59"),
        ({"kind": "cron", "cron": "*/15 9-17 * * 1-5"}, "cron */15 9-17 * * 1-5"),
    ],
)
def test_schedule_summary_reads_like_a_sentence(spec, text):
    assert schedule_summary(spec) == text


def test_local_and_utc_times_show_the_offset():
    moment = dt.datetime(2026, 3, 31, 7, 0, tzinfo=dt.UTC)
    assert local_time(moment, "Europe/London") == "Tue 31 Mar 2026 08:00 BST (+01:00)"
    assert local_time(moment, "America/New_York") == "Tue 31 Mar 2026 03:00 EDT (-04:00)"
    assert utc_time(moment) == "2026-03-31 07:00 UTC"
    assert local_time(None, "UTC") == "—"


# --- scoping -----------------------------------------------------------------------------------


def test_list_shows_own_schedules_with_next_run_in_both_zones(setup):
    org, other, officer, ours, theirs, client = setup
    html = client.get(LIST).content.decode()
    assert "Monthly board pack" in html and "Globex" not in html
    assert "Monthly on the last day at 08:00" in html
    assert local_time(ours.next_run_at, "Europe/London") in html
    assert utc_time(ours.next_run_at) in html
    assert "Active" in html and "olivia" in html
    assert "column-organization" not in html  # one organization: no column for it


def test_list_shows_last_status_badge_and_paused_reason(setup):
    org, other, officer, ours, theirs, client = setup
    ReportSchedule.objects.filter(pk=ours.pk).update(last_run_status=RunStatus.PARTIAL, last_run_at=timezone.now())
    schedule_pause(schedule=ours, reason="Paused after 3 failed runs in a row.")
    html = client.get(LIST).content.decode()
    assert 'class="schedule-badge"' in html and ">Partial</span>" in html
    assert ">Paused</span>" in html and "Paused after 3 failed runs in a row." in html


def test_other_organizations_schedule_is_out_of_reach(setup):
    org, other, officer, ours, theirs, client = setup
    change = client.get(f"{LIST}{theirs.pk}/change/")
    assert change.status_code == 404
    assert client.post(f"{LIST}{theirs.pk}/do/run/").status_code == 404
    assert client.post(f"{LIST}{theirs.pk}/do/pause/").status_code == 404
    for action in ("run_now", "send_test_to_me", "pause"):
        act(client, action, theirs)
    theirs.refresh_from_db()
    assert theirs.is_active and not ScheduleRun.objects.filter(schedule=theirs).exists()
    assert client.get(f"/admin/scheduling/schedulerun/?schedule__id__exact={theirs.pk}").status_code in (200, 302)
    assert "Globex" not in client.get("/admin/scheduling/schedulerun/").content.decode()


def test_add_form_offers_only_own_organizations(setup):
    org, other, officer, ours, theirs, client = setup
    html = client.get(ADD).content.decode()
    assert '"acme"' in html and "globex" not in html.lower()
    assert 'list="schedule-timezones"' in html and '<option value="America/New_York">' in html
    assert 'id="schedule-next-runs"' in html
    response = client.post(ADD, form_data(other))
    assert "Select a valid choice" in response.content.decode()
    assert ReportSchedule.objects.filter(organization=other).count() == 1


# --- the form goes through the services --------------------------------------------------------


def test_add_form_stores_the_schedule_json_and_next_run_and_audits(setup):
    org, other, officer, ours, theirs, client = setup
    before = timezone.now()
    response = client.post(ADD, form_data(org))
    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule = ReportSchedule.objects.get(name="Board pack")
    assert schedule.schedule == {"kind": "monthly", "time": "08:00", "day_of_month": "last"}
    assert schedule.filters == {"period": "previous_month"} and schedule.columns == {}
    assert schedule.recipients == ["audit@example.com", "board@example.com", "cfo@example.com"]
    assert schedule.owner == officer and schedule.timezone == "Europe/London" and schedule.format == "csv"
    local = schedule.next_run_at.astimezone(ZoneInfo("Europe/London"))
    assert schedule.next_run_at > before and (local.hour, local.minute) == (8, 0)
    assert (local + dt.timedelta(days=1)).day == 1  # the last day of its month
    event = AuditEvent.objects.get(organization=org, action="schedule.created", target_id=str(schedule.pk))
    assert event.actor == officer and event.details["after"]["schedule"]["day_of_month"] == "last"


@pytest.mark.parametrize(
    ("overrides", "spec"),
    [
        (
            {"kind": "weekly", "day_of_week": "5", "time": "17:30"},
            {"kind": "weekly", "time": "17:30", "day_of_week": 5},
        ),
        ({"kind": "daily", "time": "7:05"}, {"kind": "daily", "time": "07:05"}),
        ({"kind": "monthly", "day_of_month": "15"}, {"kind": "monthly", "time": "08:00", "day_of_month": 15}),
        ({"kind": "cron", "cron": " */15  9-17 * * 1-5 ", "time": ""}, {"kind": "cron", "cron": "*/15 9-17 * * 1-5"}),
    ],
)
def test_add_form_builds_each_kind_of_rule(setup, overrides, spec):
    org, other, officer, ours, theirs, client = setup
    assert client.post(ADD, form_data(org, **overrides)).status_code == 302
    assert ReportSchedule.objects.get(name="Board pack").schedule == spec


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"kind": "cron", "cron": "0 0 31 2 *"}, "cron", "never runs"),
        ({"kind": "cron", "cron": "0 0 * *"}, "cron", "needs exactly five fields"),
        ({"kind": "daily", "time": "25:00"}, "time", "24-hour clock"),
        ({"kind": "daily", "time": ""}, "time", "24-hour clock"),
        ({"kind": "weekly", "time": "", "day_of_week": "3"}, "time", "24-hour clock"),
        ({"kind": "monthly", "time": "", "day_of_month": "15"}, "time", "24-hour clock"),
        ({"kind": "cron", "cron": "* 3-3 * * *"}, "cron", "starts and ends on the same value"),
        ({"kind": "cron", "cron": "61 * * * *"}, "cron", "minute 0-59"),
        ({"kind": "cron", "cron": "H * * * *"}, "cron", "hashed (H)"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "is not a known IANA timezone"),
        ({"recipients": ""}, "recipients", "Email delivery needs at least one recipient."),
        ({"recipients": "audit@example.com, not-an-email"}, "recipients", "is not a valid email address"),
        ({"recipients": " ".join(f"r{n}@example.com" for n in range(51))}, "recipients", "At most 50 recipients"),
        ({"delivery_method": "storage", "storage_path": "../etc"}, "storage_path", "Storage delivery needs"),
        ({"delivery_method": "storage", "storage_path": ""}, "storage_path", "Storage delivery needs"),
        ({"dataset": "cases", "format": "pdf"}, "format", "PDF is only for board_report"),
        ({"dataset": "board_report", "format": "csv"}, "format", "board_report dataset is a PDF"),
        ({"name": "   "}, "name", "This field is required."),
        ({"kind": "fortnightly"}, "kind", "Select a valid choice"),
    ],
)
def test_bad_inputs_show_a_form_error_and_store_nothing(setup, overrides, field, message):
    org, other, officer, ours, theirs, client = setup
    response = client.post(ADD, form_data(org, **overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert message in response.content.decode().replace("&quot;", '"')
    assert ReportSchedule.objects.filter(organization=org).count() == 1
    assert (
        not AuditEvent.objects.filter(organization=org, action="schedule.created")
        .exclude(target_id=str(ours.pk))
        .exists()
    )


def test_recipient_outside_allowed_domains_is_refused(setup):
    org, other, officer, ours, theirs, client = setup
    org.allowed_recipient_domains = ["acme.com"]
    org.save()
    response = client.post(ADD, form_data(org, recipients="cfo@acme.com\nleak@gmail.com"))
    assert "leak@gmail.com is outside the organization's allowed recipient domains" in " ".join(
        response.context["adminform"].form.errors["recipients"]
    )


@pytest.mark.parametrize(
    ("field", "form_input"),
    [
        ("name", "name"),
        ("timezone", "timezone"),
        ("schedule.kind", "kind"),
        ("schedule.time", "time"),
        ("schedule.day_of_week", "day_of_week"),
        ("schedule.day_of_month", "day_of_month"),
        ("schedule.cron", "cron"),
        ("export.dataset", "dataset"),
        ("export.format", "format"),
        ("export.filters", "period"),
        ("delivery.method", "delivery_method"),
        ("delivery.recipients", "recipients"),
        ("delivery.storage_path", "storage_path"),
        ("delivery.protection", "protection"),
        ("delivery.passphrase", "passphrase"),
        # No input for these on the form: the error is on the whole form.
        ("export.columns", None),
        ("export.columns.identity", None),
        ("schedule", None),
        ("delivery", None),
        (None, None),
    ],
)
def test_service_error_shows_on_the_input_its_field_names(setup, monkeypatch, field, form_input):
    org, other, officer, ours, theirs, client = setup

    def refuse(**kwargs):
        raise ApplicationError("Refused by the service.", field=field)

    monkeypatch.setattr("scheduling.forms.schedule_validate", refuse)
    response = client.post(ADD, form_data(org))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors == {form_input or "__all__": ["Refused by the service."]}
    assert ReportSchedule.objects.filter(organization=org).count() == 1


def test_plain_delivery_under_a_protected_policy_is_an_error_on_protection(setup):
    org, other, officer, ours, theirs, client = setup
    org.delivery_policy = DeliveryPolicy.PROTECTED
    org.save()
    response = client.post(ADD, form_data(org))
    form = response.context["adminform"].form
    assert list(form.errors) == ["protection"]
    assert "sends reports protected only" in form.errors["protection"][0]
    assert ReportSchedule.objects.filter(organization=org).count() == 1


def test_change_form_shows_the_rule_and_saves_through_the_service(setup):
    org, other, officer, ours, theirs, client = setup
    ReportSchedule.objects.filter(pk=ours.pk).update(filters={"period": "previous_month", "severity": ["high"]})
    page = client.get(f"{LIST}{ours.pk}/change/")
    form = page.context["adminform"].form
    assert form.initial["kind"] == "monthly" and form.initial["day_of_month"] == "last"
    assert form.initial["recipients"] == "audit@example.com" and form.initial["period"] == "previous_month"
    assert "olivia" in page.content.decode()  # the owner, read only
    data = form_data(org, organization=None, kind="weekly", day_of_week="3", timezone="America/New_York")
    data.update(
        {"runs-TOTAL_FORMS": "0", "runs-INITIAL_FORMS": "0", "runs-MIN_NUM_FORMS": "0", "runs-MAX_NUM_FORMS": "0"}
    )
    response = client.post(f"{LIST}{ours.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    ours.refresh_from_db()
    assert ours.schedule == {"kind": "weekly", "time": "08:00", "day_of_week": 3}
    assert ours.timezone == "America/New_York" and ours.organization == org and ours.owner == officer
    assert ours.filters == {"period": "previous_month", "severity": ["high"]}  # the API's filters are kept
    local = ours.next_run_at.astimezone(ZoneInfo("America/New_York"))
    assert (local.isoweekday(), local.hour, local.minute) == (3, 8, 0)
    event = AuditEvent.objects.get(organization=org, action="schedule.updated")
    assert event.details["before"]["timezone"] == "Europe/London"
    assert event.details["after"]["timezone"] == "America/New_York"


def test_unticking_active_pauses_on_save(setup):
    org, other, officer, ours, theirs, client = setup
    data = form_data(org, organization=None, is_active=None)
    data.update({"runs-TOTAL_FORMS": "0", "runs-INITIAL_FORMS": "0"})
    assert client.post(f"{LIST}{ours.pk}/change/", data).status_code == 302
    ours.refresh_from_db()
    assert not ours.is_active and ours.next_run_at is None


# --- roles ---------------------------------------------------------------------------------------


def test_viewer_can_view_but_not_add_change_or_act(setup):
    org, other, officer, ours, theirs, _ = setup
    client = Client()
    client.force_login(member(org, Role.VIEWER))
    listing = client.get(LIST).content.decode()
    assert "Monthly board pack" in listing and "Run now" not in listing and "Add report schedule" not in listing
    page = client.get(f"{LIST}{ours.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and "Monthly on the last day at 08:00" in html and "audit@example.com" in html
    assert 'name="_save"' not in html and 'id="schedule-next-runs"' not in html and "/do/run/" not in html
    assert "<ol><li>" in html  # the upcoming runs, worked out on the server
    assert client.get(ADD).status_code == 403
    assert client.post(ADD, form_data(org)).status_code == 403
    assert client.post(f"{LIST}{ours.pk}/change/", form_data(org)).status_code == 403
    assert client.post(f"{LIST}{ours.pk}/do/run/").status_code == 403
    act(client, "run_now", ours)
    act(client, "pause", ours)
    ours.refresh_from_db()
    assert ours.is_active and not ScheduleRun.objects.exists()


def test_actions_respect_the_role_in_each_schedules_organization(setup):
    org, other, officer, ours, theirs, client = setup
    # Olivia may view Globex too, but not act there.
    from organizations.tests.factories import MembershipFactory

    MembershipFactory(user=officer, organization=other, role=Role.VIEWER)
    listing = client.get(LIST).content.decode()
    assert "Globex secret pack" in listing and "column-organization" in listing
    assert "Run now" in listing
    response = act(client, "pause", ours, theirs)
    ours.refresh_from_db()
    theirs.refresh_from_db()
    assert not ours.is_active and theirs.is_active
    assert "this needs the officer role in Globex" in response.content.decode()


def test_officer_cannot_delete_but_admin_deletes_through_the_service(setup):
    org, other, officer, ours, theirs, client = setup
    ScheduleRun.objects.create(schedule=ours, scheduled_for=timezone.now(), status=RunStatus.SUCCESS)
    assert client.get(f"{LIST}{ours.pk}/delete/").status_code == 403
    admin_client = Client()
    admin_client.force_login(member(org, Role.ADMIN))
    confirm = admin_client.get(f"{LIST}{ours.pk}/delete/")
    assert confirm.status_code == 200 and "permission to delete" not in confirm.content.decode()
    assert admin_client.post(f"{LIST}{ours.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not ReportSchedule.objects.filter(pk=ours.pk).exists()
    assert AuditEvent.objects.filter(organization=org, action="schedule.deleted").exists()


# --- actions -------------------------------------------------------------------------------------


def test_run_now_queues_a_manual_run_that_delivers(setup, django_capture_on_commit_callbacks):
    org, other, officer, ours, theirs, client = setup
    with django_capture_on_commit_callbacks(execute=True):
        response = act(client, "run_now", ours)
    assert "Run started for Monthly board pack" in response.content.decode()
    run = ScheduleRun.objects.get(schedule=ours)
    assert run.trigger == RunTrigger.MANUAL and run.requested_by == officer and run.recipients_override is None
    assert run.status == RunStatus.SUCCESS
    assert [d.recipient for d in run.deliveries.all()] == ["audit@example.com"]
    assert [m.to for m in mail.outbox] == [["audit@example.com"]]
    assert AuditEvent.objects.filter(organization=org, action="schedule.run").exists()


def test_send_a_test_goes_to_the_requesting_user_only(setup, django_capture_on_commit_callbacks):
    org, other, officer, ours, theirs, client = setup
    with django_capture_on_commit_callbacks(execute=True):
        response = act(client, "send_test_to_me", ours)
    assert "goes to olivia@example.com only" in response.content.decode()
    run = ScheduleRun.objects.get(schedule=ours)
    assert run.trigger == RunTrigger.MANUAL and run.recipients_override == ["olivia@example.com"]
    assert [m.to for m in mail.outbox] == [["olivia@example.com"]]
    assert mail.outbox[0].subject.startswith("[Test]")
    ours.refresh_from_db()
    assert ours.last_run_status == ""  # a test does not count in the schedule's history


def test_send_a_test_without_an_email_says_so(setup):
    org, other, officer, ours, theirs, client = setup
    officer.email = ""
    officer.save()
    response = act(client, "send_test_to_me", ours)
    assert "Your user has no email address" in response.content.decode()
    assert not ScheduleRun.objects.exists()


def test_pause_and_resume_actions(setup):
    org, other, officer, ours, theirs, client = setup
    response = act(client, "pause", ours)
    ours.refresh_from_db()
    assert not ours.is_active and ours.next_run_at is None
    assert ours.paused_reason == "Paused by olivia in the admin."
    assert "Paused Monthly board pack." in response.content.decode()
    assert "is already paused" in act(client, "pause", ours).content.decode()
    response = act(client, "resume", ours)
    ours.refresh_from_db()
    assert ours.is_active and ours.paused_reason == "" and ours.next_run_at > timezone.now()
    assert "Resumed Monthly board pack (next run" in response.content.decode()
    actions = list(
        AuditEvent.objects.filter(organization=org, action__startswith="schedule.p").values_list("action", flat=True)
    )
    assert actions == ["schedule.paused"]
    assert AuditEvent.objects.filter(organization=org, action="schedule.resumed").exists()


def test_change_page_buttons_post_the_same_actions(setup):
    org, other, officer, ours, theirs, client = setup
    html = client.get(f"{LIST}{ours.pk}/change/").content.decode()
    assert f"{LIST}{ours.pk}/do/run/" in html and f"{LIST}{ours.pk}/do/pause/" in html
    assert f"{LIST}{ours.pk}/do/resume/" not in html
    assert client.get(f"{LIST}{ours.pk}/do/pause/").status_code == 405
    response = client.post(f"{LIST}{ours.pk}/do/pause/")
    assert response.status_code == 302 and response.url == f"{LIST}{ours.pk}/change/"
    ours.refresh_from_db()
    assert not ours.is_active
    assert f"{LIST}{ours.pk}/do/resume/" in client.get(f"{LIST}{ours.pk}/change/").content.decode()


# --- run history ---------------------------------------------------------------------------------


@pytest.fixture
def history(setup):
    org, other, officer, ours, theirs, client = setup
    run = ScheduleRun.objects.create(
        schedule=ours,
        scheduled_for=timezone.now() - dt.timedelta(hours=1),
        status=RunStatus.PARTIAL,
        row_count=42,
        missed_slots=2,
        error="cfo@example.com: SMTP 550 mailbox unavailable",
    )
    Delivery.objects.create(run=run, recipient="audit@example.com", status=DeliveryStatus.SENT, attempts=1)
    Delivery.objects.create(
        run=run,
        recipient="cfo@example.com",
        status=DeliveryStatus.FAILED,
        attempts=3,
        last_error="SMTP 550 mailbox unavailable",
    )
    ScheduleRun.objects.create(
        schedule=theirs, scheduled_for=timezone.now(), status=RunStatus.FAILED, error="globex private failure"
    )
    return run


def test_change_page_shows_run_history_with_deliveries(setup, history):
    org, other, officer, ours, theirs, client = setup
    html = client.get(f"{LIST}{ours.pk}/change/").content.decode()
    assert "Run history" in html
    assert ">Partial</span>" in html and "42" in html
    assert "audit@example.com" in html and ">Sent</span>" in html
    assert "cfo@example.com" in html and ">Failed</span>" in html and "SMTP 550 mailbox unavailable" in html
    assert "3 attempts" in html and "globex private failure" not in html
    assert f"/admin/scheduling/schedulerun/{history.pk}/change/" in html
    assert local_time(history.scheduled_for, "Europe/London") in html and utc_time(history.scheduled_for) in html
    assert f"?schedule__id__exact={ours.pk}" in html


def test_run_history_keeps_the_newest_twenty(setup):
    org, other, officer, ours, theirs, client = setup
    now = timezone.now()
    for n in range(25):
        ScheduleRun.objects.create(schedule=ours, scheduled_for=now - dt.timedelta(days=n), status=RunStatus.SUCCESS)
    page = client.get(f"{LIST}{ours.pk}/change/")
    formset = page.context["inline_admin_formsets"][0].formset
    shown = [form.instance.scheduled_for for form in formset.forms]
    assert len(shown) == 20 and shown == sorted(shown, reverse=True) and shown[0] == now
    assert "All 25 runs" in page.content.decode()


def test_run_admin_is_read_only_and_scoped(setup, history):
    org, other, officer, ours, theirs, client = setup
    listing = client.get("/admin/scheduling/schedulerun/").content.decode()
    assert "Monthly board pack" in listing and "Globex" not in listing and "globex private failure" not in listing
    assert "1 sent, 1 failed" in listing
    page = client.get(f"/admin/scheduling/schedulerun/{history.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and 'name="_save"' not in html
    assert "SMTP 550 mailbox unavailable" in html and "cfo@example.com" in html
    assert client.get("/admin/scheduling/schedulerun/add/").status_code == 403
    assert client.post(f"/admin/scheduling/schedulerun/{history.pk}/change/", {}).status_code == 403
    assert client.post(f"/admin/scheduling/schedulerun/{history.pk}/delete/", {"post": "yes"}).status_code == 403
    theirs_run = ScheduleRun.objects.get(schedule=theirs)
    assert client.get(f"/admin/scheduling/schedulerun/{theirs_run.pk}/change/").status_code == 404
    assert ScheduleRun.objects.count() == 2 and Delivery.objects.count() == 2


def test_saving_the_change_form_leaves_run_history_alone(setup, history):
    org, other, officer, ours, theirs, client = setup
    page = client.get(f"{LIST}{ours.pk}/change/")
    formset = page.context["inline_admin_formsets"][0].formset
    data = form_data(org, organization=None, name="Renamed")
    data.update({f"{formset.prefix}-{k}": v for k, v in formset.management_form.initial.items()})
    data[f"{formset.prefix}-0-id"] = str(history.pk)
    data[f"{formset.prefix}-0-schedule"] = str(ours.pk)
    data[f"{formset.prefix}-0-error"] = "tampered"
    assert client.post(f"{LIST}{ours.pk}/change/", data).status_code == 302
    history.refresh_from_db()
    assert history.error.startswith("cfo@example.com") and history.deliveries.count() == 2
    assert ReportSchedule.objects.get(pk=ours.pk).name == "Renamed"


def test_an_encrypted_zip_schedule_keeps_its_passphrase_hidden(setup):
    from config.crypto import secret_decrypt

    org, other, officer, ours, theirs, client = setup
    missing = client.post(ADD, form_data(org, protection="encrypted_zip"))
    assert missing.status_code == 200 and "passphrase" in missing.context["adminform"].form.errors
    assert not ReportSchedule.objects.filter(name="Board pack").exists()
    saved = client.post(ADD, form_data(org, protection="encrypted_zip", passphrase="open sesame 2026"))
    assert saved.status_code == 302
    schedule = ReportSchedule.objects.get(name="Board pack")
    assert schedule.protection == "encrypted_zip"
    assert secret_decrypt(schedule.passphrase_encrypted) == "open sesame 2026"
    page = client.get(f"/admin/scheduling/reportschedule/{schedule.pk}/change/").content.decode()
    assert "open sesame 2026" not in page and schedule.passphrase_encrypted not in page
