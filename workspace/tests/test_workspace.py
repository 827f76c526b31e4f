"""The workspace (the admin's landing page), the organization switch and the progress JSON."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from exports.models import ExportJob
from exports.tests.factories import ExportJobFactory, org_with_cases
from organizations.models import Role
from organizations.tests.factories import MembershipFactory, OrganizationFactory, member
from scheduling.models import Delivery, ScheduleRun
from scheduling.services import schedule_pause
from scheduling.tests.factories import make_schedule
from workspace.templatetags.workspace_time import relative

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def two_orgs():
    acme, _ = org_with_cases(slug="acme", timezone="Europe/London")
    globex = OrganizationFactory(slug="globex", name="Globex", timezone="America/New_York")
    return acme, globex


def test_workspace_shows_each_block_of_the_members_organization(two_orgs):
    acme, globex = two_orgs
    officer = member(acme, Role.OFFICER, username="olivia")
    running = ExportJobFactory(organization=acme, status="processing", rows_done=30, rows_total=120, format="xlsx")
    done = ExportJobFactory(
        organization=acme,
        status="completed",
        file_name="acme-cases.xlsx",
        row_count=5,
        file_size_bytes=2048,
        completed_at=timezone.now(),
    )
    failed = ExportJobFactory(organization=acme, status="failed", error="Disk full while writing part 3")
    schedule = make_schedule(acme, officer, name="Board pack")
    run = ScheduleRun.objects.create(
        schedule=schedule, scheduled_for=timezone.now(), trigger="manual", status="partial", error="1 of 2 failed"
    )
    Delivery.objects.create(run=run, recipient="audit@example.com", status="sent")
    Delivery.objects.create(run=run, recipient="board@example.com", status="failed", last_error="550 mailbox full")
    theirs = ExportJobFactory(organization=globex, status="processing", format="csv")

    response = logged_in(officer).get("/admin/")
    html = response.content.decode()
    assert response.status_code == 200 and "Workspace · Acme" in html
    assert f'data-job="{running.pk}"' in html and "25 %" in html
    assert f"/admin/exports/exportjob/{running.pk}/progress/" in html
    assert f"/admin/exports/exportjob/{done.pk}/download/" in html and "acme-cases.xlsx" in html
    assert "Board pack" in html and "(Europe/London" in html and "in " in html
    assert "Disk full while writing part 3" in html and "550 mailbox full" in html and str(failed.pk) in html
    assert "5 of 20" in html
    assert 'role="img"' in html and "Exports per day" in html and "Report deliveries per week" in html
    assert str(theirs.pk) not in html and "Globex" not in html
    # Every block links to the list behind it.
    for link in (
        "/admin/exports/exportjob/?status__in=pending,processing",
        "/admin/exports/exportjob/?status__exact=completed",
        "/admin/scheduling/reportschedule/?state=active",
        "/admin/scheduling/schedulerun/?status__in=failed,partial",
        "/admin/tagging/tagslot/",
    ):
        assert link in html, link


def test_workspace_empty_states_say_what_to_do_next():
    org = OrganizationFactory(slug="empty", name="Empty Co")
    html = logged_in(member(org, Role.OFFICER)).get("/admin/").content.decode()
    assert "Nothing is running." in html and "Start an export above" in html
    assert "No active schedules." in html and "Add a scheduled report" in html
    assert "Nothing failed in the last 7 days." in html
    assert "0 of 20 slots configured" in html
    assert 'id="ws-quick-export"' in html


def test_viewer_gets_no_export_form_and_warnings_show(two_orgs):
    acme, _ = two_orgs
    officer = member(acme, Role.OFFICER)
    schedule = make_schedule(acme, officer, name="Weekly digest")
    schedule_pause(schedule=schedule, reason="Paused after 3 failed runs in a row.")
    html = logged_in(member(acme, Role.VIEWER)).get("/admin/").content.decode()
    assert 'id="ws-quick-export"' not in html
    assert "Weekly digest" in html and "Paused after 3 failed runs in a row." in html


def test_quick_export_starts_an_export_of_the_current_organization(two_orgs, django_capture_on_commit_callbacks):
    acme, globex = two_orgs
    client = logged_in(member(acme, Role.OFFICER, username="olivia"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/workspace/export/", {"format": "xlsx", "period": ""})
    assert response.status_code == 302 and response.url == "/admin/"
    job = ExportJob.objects.get()
    assert (job.organization, job.format, job.source, job.requested_by.username) == (acme, "xlsx", "admin", "olivia")
    assert job.status == "completed"
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/workspace/export/", {"format": "csv", "period": "previous_month"})
    latest = ExportJob.objects.latest("created_at")
    assert latest.format == "csv" and latest.filters["created_from"] and latest.filters["created_to"]
    assert client.post("/admin/workspace/export/", {"format": "exe"}).status_code == 302
    assert ExportJob.objects.count() == 2
    viewer = logged_in(member(acme, Role.VIEWER))
    assert viewer.post("/admin/workspace/export/", {"format": "xlsx"}).status_code == 403
    assert ExportJob.objects.count() == 2


def test_progress_json_is_scoped_to_the_users_organizations(two_orgs):
    acme, globex = two_orgs
    mine = ExportJobFactory(organization=acme, status="processing", rows_done=50, rows_total=200)
    theirs = ExportJobFactory(organization=globex, status="processing")
    client = logged_in(member(acme, Role.VIEWER))
    data = client.get(f"/admin/exports/exportjob/{mine.pk}/progress/").json()
    assert data["percent"] == 25 and data["status"] == "processing" and not data["terminal"]
    assert data["download_url"] is None
    assert client.get(f"/admin/exports/exportjob/{theirs.pk}/progress/").status_code == 404
    ExportJob.objects.filter(pk=mine.pk).update(status="completed")
    data = client.get(f"/admin/exports/exportjob/{mine.pk}/progress/").json()
    assert data["terminal"] and data["percent"] == 100
    assert data["download_url"] == f"/admin/exports/exportjob/{mine.pk}/download/"
    anonymous = Client().get(f"/admin/exports/exportjob/{mine.pk}/progress/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous.url


def test_staff_without_membership_see_no_organizations_data(two_orgs):
    acme, _ = two_orgs
    ExportJobFactory(organization=acme, status="processing")
    loner = User.objects.create_user("loner", password="pw", is_staff=True)
    html = logged_in(loner).get("/admin/").content.decode()
    assert "You are not a member of any organization" in html and "Acme" not in html


def test_single_organization_member_never_picks_it(two_orgs):
    acme, _ = two_orgs
    client = logged_in(member(acme, Role.ADMIN))  # tag slots need the admin role
    html = client.get("/admin/exports/exportjob/add/").content.decode()
    assert f'<input type="hidden" name="organization" value="{acme.pk}"' in html
    assert '<strong class="fixed-organization">Acme</strong>' in html and '<select name="organization"' not in html
    assert 'id="org-current">Acme<' in client.get("/admin/").content.decode()
    for url in ("/admin/scheduling/reportschedule/add/", "/admin/tagging/tagslot/add/"):
        page = client.get(url).content.decode()
        assert f'name="organization" value="{acme.pk}"' in page, url


def test_member_of_several_switches_in_the_header_and_lists_follow(two_orgs):
    acme, globex = two_orgs
    user = member(acme, Role.OFFICER, username="both")
    MembershipFactory(user=user, organization=globex, role=Role.OFFICER)
    ours = ExportJobFactory(organization=acme, status="processing")
    theirs = ExportJobFactory(organization=globex, status="processing")
    client = logged_in(user)

    html = client.get("/admin/").content.decode()
    assert 'id="org-switch-select"' in html and "Workspace · all your organizations" in html
    assert str(ours.pk) in html and str(theirs.pk) in html  # until one is chosen
    form = client.get("/admin/exports/exportjob/add/").content.decode()
    assert '<select name="organization"' in form

    client.post("/admin/workspace/organization/", {"organization": acme.pk})
    assert "Workspace · Acme" in client.get("/admin/").content.decode()
    listing = client.get("/admin/exports/exportjob/").content.decode()
    assert str(ours.pk) in listing and str(theirs.pk) not in listing

    response = client.post("/admin/workspace/organization/", {"organization": globex.pk, "next": "/admin/"})
    assert response.status_code == 302 and response.url == "/admin/"
    html = client.get("/admin/").content.decode()
    assert "Workspace · Globex" in html and str(theirs.pk) in html and str(ours.pk) not in html
    listing = client.get("/admin/exports/exportjob/").content.decode()
    assert str(theirs.pk) in listing and str(ours.pk) not in listing
    form = client.get("/admin/exports/exportjob/add/").content.decode()
    assert f'name="organization" value="{globex.pk}"' in form and "switch it at the top of the page" in form
    # A change page reached by a link still opens the other organization's job.
    assert client.get(f"/admin/exports/exportjob/{ours.pk}/change/").status_code == 200

    stranger = OrganizationFactory(slug="initech", name="Initech")
    assert client.post("/admin/workspace/organization/", {"organization": stranger.pk}).status_code == 403
    assert "Workspace · Globex" in client.get("/admin/").content.decode()
    client.post("/admin/workspace/organization/", {"organization": ""})
    assert "Workspace · all your organizations" in client.get("/admin/").content.decode()
    # An address elsewhere is never followed.
    response = client.post("/admin/workspace/organization/", {"organization": acme.pk, "next": "https://evil.example/"})
    assert response.url == "/admin/"


def test_superuser_sees_all_organizations_and_keeps_the_app_index(two_orgs):
    acme, globex = two_orgs
    ExportJobFactory(organization=acme, status="processing")
    ExportJobFactory(organization=globex, status="processing")
    root = User.objects.create_superuser("root", password="pw")
    client = logged_in(root)
    html = client.get("/admin/").content.decode()
    assert "Workspace · all your organizations" in html and "Acme" in html and "Globex" in html
    assert 'href="/admin/apps/"' in html
    apps = client.get("/admin/apps/").content.decode()
    assert "/admin/exports/exportjob/" in apps and "/admin/auth/user/" in apps
    client.post("/admin/workspace/organization/", {"organization": globex.pk})
    assert "Workspace · Globex" in client.get("/admin/").content.decode()


def test_lists_have_empty_states_that_say_what_to_do():
    org = OrganizationFactory(slug="empty", name="Empty Co")
    client = logged_in(member(org, Role.OFFICER))
    assert "No exports yet" in client.get("/admin/exports/exportjob/").content.decode()
    assert "No scheduled reports yet" in client.get("/admin/scheduling/reportschedule/").content.decode()
    assert "No report runs yet" in client.get("/admin/scheduling/schedulerun/").content.decode()


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (dt.timedelta(hours=3), "in 3 h"),
        (dt.timedelta(minutes=-20), "20 min ago"),
        (dt.timedelta(days=3), "in 3 days"),
        (dt.timedelta(seconds=10), "now"),
    ],
)
def test_relative_times_read_short(delta, text):
    now = timezone.now()
    assert relative(now + delta, now) == text


def test_sidebar_lists_the_officers_groups_first_and_lists_name_their_zone(two_orgs):
    acme, _ = two_orgs
    client = logged_in(member(acme, Role.OFFICER))
    html = client.get("/admin/").content.decode()
    positions = [
        html.index(f">{name}</a>") for name in ("Exports", "Scheduled reports", "Tag slots", "Audit trail", "Cases")
    ]
    assert positions == sorted(positions)
    ExportJobFactory(organization=acme, status="pending")
    listing = client.get("/admin/exports/exportjob/").content.decode()
    assert "Times are in Europe/London" in listing


@pytest.mark.parametrize(
    "url",
    [
        "/admin/cases/case/add/",
        "/admin/organizations/organization/add/",
        "/admin/exports/exportjob/add/",
        "/admin/scheduling/reportschedule/add/",
        "/admin/tagging/tagslot/add/",
    ],
)
def test_every_field_of_the_main_forms_says_what_it_is_for(admin_client, url):
    response = admin_client.get(url)
    assert response.status_code == 200
    form = response.context["adminform"].form
    missing = [name for name, field in form.fields.items() if not field.help_text]
    assert missing == [], f"{url}: no help text for {missing}"
