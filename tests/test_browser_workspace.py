"""The workspace in a real browser, against a live server and a real qcluster.

(b) an officer lands on the workspace, starts an XLSX export from it, watches its progress
reach 100 % without a reload, downloads the file and opens it with openpyxl; (c) an officer
adds a monthly schedule, sees its next five runs, runs it now and finds the deliveries on
the workspace; (e) staff of another organization see none of it, the workspace included.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import openpyxl
import pytest
from django.contrib.auth.models import User

from cases.models import Case
from exports.models import ExportJob
from exports.services import export_job_create
from exports.tests.factories import org_with_cases
from organizations.models import Role
from organizations.tests.factories import MembershipFactory, OrganizationFactory
from scheduling.models import ReportSchedule, ScheduleRun
from tests.browser import admin_login, assert_accessible, browser_page, schedule_rule_fill
from tests.cluster import qcluster
from tests.smtp import ScriptedHandler, smtp_server

SCREENSHOTS = os.environ.get("SCREENSHOT_DIR", "/tmp")
PASSWORD = "pw-for-browser"


def staff(username: str, organization, role: str) -> User:
    user = User.objects.create_user(username, email=f"{username}@example.com", password=PASSWORD, is_staff=True)
    MembershipFactory(user=user, organization=organization, role=role)
    return user


def other_staff_see_nothing(page, base_url: str, *, hidden: list[str], job: ExportJob | None = None) -> None:
    """(e) Globex's officer, signed in on a fresh page, finds no trace of Acme's work."""
    page.context.clear_cookies()
    admin_login(page, base_url, "gina", PASSWORD)
    page.goto(f"{base_url}/admin/")
    page.wait_for_selector("#workspace")
    text = page.text_content("#content") or ""
    assert "Workspace · Globex" in text and "Acme" not in text
    for needle in hidden:
        assert needle not in text, needle
    assert "Nothing is running." in text and "No active schedules." in text
    assert page.locator("#org-switch-select").count() == 0  # one organization: nothing to pick
    if job is not None:
        for suffix in ("progress/", "download/"):
            response = page.request.get(f"{base_url}/admin/exports/exportjob/{job.pk}/{suffix}")
            assert response.status == 404, suffix
    listing = page.goto(f"{base_url}/admin/exports/exportjob/")
    assert listing is not None and listing.status == 200
    assert "No exports yet" in (page.text_content("#content") or "")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_officer_exports_xlsx_from_the_workspace_and_watches_it_finish(live_server, settings, tmp_path):
    settings.TASKS_SYNC = False  # the export runs in the real cluster, not inline
    acme, _ = org_with_cases(slug="acme")
    globex = OrganizationFactory(name="Globex", slug="globex", timezone="America/New_York")
    staff("olivia", acme, Role.OFFICER)
    staff("gina", globex, Role.OFFICER)

    with qcluster(), browser_page() as page:
        admin_login(page, live_server.url, "olivia", PASSWORD)
        page.goto(f"{live_server.url}/admin/")
        page.wait_for_selector("#workspace")
        assert "Workspace · Acme" in page.text_content("h1")
        assert page.text_content("#org-current") == "Acme"
        assert "Nothing is running." in page.text_content("#ws-running")
        assert_accessible(page)

        page.select_option("#ws-export-format", "xlsx")
        page.click("#ws-quick-export button[type=submit]")
        page.wait_for_selector("#ws-running tr.ws-job")
        assert "started" in page.text_content(".messagelist")
        job = ExportJob.objects.get()
        assert (job.organization, job.format, job.requested_by.username) == (acme, "xlsx", "olivia")

        # From here on the page is never reloaded: a marker set now survives only in this document.
        page.evaluate("window.__sameDocument = true")
        row = f"#ws-running tr[data-job='{job.pk}']"
        page.wait_for_function(
            f"document.querySelector(\"{row} [data-live=status]\").textContent === 'Completed'", timeout=90_000
        )
        assert page.evaluate("window.__sameDocument === true")
        assert page.eval_on_selector(f"{row} progress", "p => p.value") == 100
        assert page.text_content(f"{row} [data-live=percent]") == "100 %"
        page.screenshot(path=f"{SCREENSHOTS}/workspace-export-done.png", full_page=True)

        with page.expect_download() as download_info:
            page.click(f"{row} a.ws-download")
        download = download_info.value
        saved = Path(tmp_path) / download.suggested_filename
        download.save_as(saved)
        assert saved.suffix == ".xlsx"
        sheet = openpyxl.load_workbook(saved, read_only=True).worksheets[0]
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0][0] == "Case reference" and len(rows) == 1 + 5
        assert sorted(r[0] for r in rows[1:]) == sorted(
            Case.objects.filter(organization=acme).values_list("reference", flat=True)
        )
        job.refresh_from_db()
        assert job.status == "completed" and job.row_count == 5

        # An export started elsewhere (the API's service here) shows up without a reload, in
        # "Running now" or, once written, in "Latest finished exports", with the first one.
        other = export_job_create(organization=acme, dataset="cases", format="csv")
        page.wait_for_selector(f"#workspace [data-job='{other.pk}']", timeout=60_000)
        page.wait_for_selector(f"#ws-finished-list li[data-job='{job.pk}']", timeout=30_000)
        assert page.evaluate("window.__sameDocument === true")

        # The finished file is listed on the workspace with its download button.
        page.goto(f"{live_server.url}/admin/")
        assert page.locator(f"#ws-finished li[data-job='{job.pk}'] a.ws-download").count() == 1

        other_staff_see_nothing(page, live_server.url, hidden=[str(job.pk), job.file_name], job=job)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_officer_schedules_a_monthly_report_runs_it_and_sees_deliveries(live_server, settings):
    settings.TASKS_SYNC = False  # the run goes through the real cluster
    acme, _ = org_with_cases(slug="acme")
    globex = OrganizationFactory(name="Globex", slug="globex", timezone="America/New_York")
    staff("olivia", acme, Role.OFFICER)
    staff("gina", globex, Role.OFFICER)
    handler = ScriptedHandler()

    with smtp_server(handler) as port, qcluster(EMAIL_URL=f"smtp://127.0.0.1:{port}"), browser_page() as page:
        admin_login(page, live_server.url, "olivia", PASSWORD)
        page.goto(f"{live_server.url}/admin/")
        page.wait_for_selector("#workspace")
        assert "No active schedules." in page.text_content("#ws-next")
        page.click("#ws-next a:text('Add a scheduled report')")
        page.wait_for_selector("#id_kind")
        assert page.text_content(".fixed-organization") == "Acme"  # never picked

        page.fill("#id_name", "Monthly case pack")
        page.select_option("#id_format", "xlsx")
        page.fill("#id_recipients", "audit@example.com\nboard@example.com")
        schedule_rule_fill(page, day="1", time="08:00", expect="-01T08:00")
        runs = page.eval_on_selector_all("#schedule-next-runs li", "items => items.map(i => i.textContent)")
        assert len(runs) == 5 and all(" 01 " in text and "08:00" in text for text in runs), runs
        page.click("input[name=_save]")
        page.wait_for_selector("#result_list")
        schedule = ReportSchedule.objects.get(name="Monthly case pack")
        assert schedule.organization == acme and schedule.schedule["kind"] == "monthly"

        # The workspace shows the next run on the schedule's clock, the zone named.
        page.goto(f"{live_server.url}/admin/")
        upcoming = page.text_content("#ws-next") or ""
        assert "Monthly case pack" in upcoming and "Europe/London" in upcoming and "in " in upcoming

        page.click("#ws-next a:text('Monthly case pack')")
        page.click("form.schedule-do button:text('Run now')")
        page.wait_for_selector(".messagelist .success")

        deadline = time.monotonic() + 120
        while True:
            page.goto(f"{live_server.url}/admin/")
            runs_block = page.text_content("#ws-runs") or ""
            # The run is marked a success once its deliveries are recorded: wait for both.
            if (runs_block.count("Sent") >= 2 and "Success" in runs_block) or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert "Monthly case pack" in runs_block and "Success" in runs_block, runs_block
        assert "audit@example.com" in runs_block and "board@example.com" in runs_block
        assert runs_block.count("Sent") >= 2
        assert_accessible(page)
        page.screenshot(path=f"{SCREENSHOTS}/workspace-deliveries.png", full_page=True)
        run = ScheduleRun.objects.get(schedule=schedule)
        assert run.status == "success" and run.trigger == "manual"
        assert sorted(r for e in handler.messages for r in e.rcpt_tos) == ["audit@example.com", "board@example.com"]

        other_staff_see_nothing(page, live_server.url, hidden=["Monthly case pack", "audit@example.com"])
        forged = page.goto(f"{live_server.url}/admin/scheduling/schedulerun/{run.pk}/change/")
        assert forged is not None and forged.status == 404


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_member_of_two_organizations_switches_in_the_header_and_the_list_refreshes_in_place(live_server):
    from exports.tests.factories import ExportJobFactory

    acme, _ = org_with_cases(slug="acme")
    globex = OrganizationFactory(name="Globex", slug="globex", timezone="America/New_York")
    user = staff("sam", acme, Role.OFFICER)
    MembershipFactory(user=user, organization=globex, role=Role.VIEWER)
    ours = ExportJobFactory(organization=acme, status="processing", rows_done=10, rows_total=100, format="xlsx")
    theirs = ExportJobFactory(organization=globex, status="completed", format="csv", file_name="globex.csv")

    with browser_page() as page:
        admin_login(page, live_server.url, "sam", PASSWORD)
        page.goto(f"{live_server.url}/admin/")
        assert "Workspace · all your organizations" in page.text_content("h1")
        assert_accessible(page)

        page.select_option("#org-switch-select", str(globex.pk))
        page.click("#org-switch button")
        page.wait_for_selector("text=Workspace · Globex")
        text = page.text_content("#content") or ""
        assert "globex.csv" in text and str(ours.pk) not in (page.content())
        assert page.locator("#ws-quick-export").count() == 0  # a viewer in Globex exports nothing
        page.screenshot(path=f"{SCREENSHOTS}/workspace-switch.png", full_page=True)

        page.select_option("#org-switch-select", str(acme.pk))
        page.click("#org-switch button")
        page.wait_for_selector("text=Workspace · Acme")
        page.goto(f"{live_server.url}/admin/exports/exportjob/")
        assert page.locator("#result_list tbody tr").count() == 1  # the list follows the switch
        assert_accessible(page)
        page.evaluate("window.__sameDocument = true")
        ExportJob.objects.filter(pk=ours.pk).update(rows_done=60)
        page.wait_for_function("document.querySelector('[data-live=percent]').textContent === '60%'")
        ExportJob.objects.filter(pk=ours.pk).update(status="completed", rows_done=100, row_count=100)
        page.wait_for_function("document.querySelector('[data-live=status]').textContent === 'Completed'")
        assert page.locator("#result_list a.button:text('Download')").count() == 1
        assert page.evaluate("window.__sameDocument === true")
        assert str(theirs.pk) not in page.content()

        page.goto(f"{live_server.url}/admin/exports/exportjob/add/")
        assert page.text_content(".fixed-organization") == "Acme"
        assert_accessible(page)
