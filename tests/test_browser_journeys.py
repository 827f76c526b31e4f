"""Two journeys in a real browser, against a live server and a real qcluster.

(a) An organization admin configures a tag slot, finding the field among the paths the
cases use and previewing its values, then asks for an export in the admin: the cluster
writes it and the downloaded file has the new column with each case's value.
(d) A viewer reads and downloads, and nothing more: no add or change buttons on any list,
a read-only change page, and 403 or 404 for every forged URL (add pages, a forged save,
another organization's export and its download, through the admin and the API).

Every page on the way is checked with axe-core: no serious or critical violations.
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest
from django.contrib.auth.models import User

from cases.models import Case
from cases.tests.factories import CaseFactory
from exports.models import ExportJob, ExportStatus
from exports.services import export_job_create
from exports.tests.factories import org_with_cases
from organizations.models import Role
from organizations.tests.factories import MembershipFactory, OrganizationFactory
from scheduling.models import ReportSchedule
from scheduling.tests.factories import make_schedule
from tagging.models import TagSlot
from tests.browser import admin_login, assert_accessible, browser_page
from tests.cluster import qcluster

PASSWORD = "pw-for-browser"


def staff(username: str, organization: Any, role: str) -> User:
    user = User.objects.create_user(username, email=f"{username}@example.com", password=PASSWORD, is_staff=True)
    MembershipFactory(user=user, organization=organization, role=role)
    return user


def wait_for_jobs(*jobs: ExportJob, seconds: float = 120) -> None:
    """Until the cluster has finished every job (the test process only reads the rows)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for job in jobs:
            job.refresh_from_db()
        if all(job.is_terminal for job in jobs):
            break
        time.sleep(0.5)
    assert [job.status for job in jobs] == [ExportStatus.COMPLETED] * len(jobs), [job.error for job in jobs]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_admin_configures_a_tag_slot_with_preview_and_exports_it(live_server, settings, tmp_path):
    settings.TASKS_SYNC = False  # the export runs in the real cluster, not inline
    org = OrganizationFactory(name="Acme", slug="acme")
    cases = [
        CaseFactory(organization=org, custom_fields={"hr": {"region": region}}) for region in ["EMEA", "APAC", "AMER"]
    ]
    unset = CaseFactory(organization=org, custom_fields={})
    user = staff("compliance", org, Role.ADMIN)

    with qcluster(), browser_page() as page:
        admin_login(page, live_server.url, "compliance", PASSWORD)
        page.goto(f"{live_server.url}/admin/")
        assert_accessible(page)
        page.goto(f"{live_server.url}/admin/tagging/tagslot/")
        assert page.locator("tr[data-slot]").count() == 20
        assert_accessible(page)
        page.click("tr[data-slot='4'] a.configure")
        page.wait_for_selector("#id_field_path")

        # Discovery: the paths the organization's cases use are offered as the admin types.
        options = page.eval_on_selector_all("#tag-field-paths option", "els => els.map(e => e.value)")
        assert "custom_fields.hr.region" in options and "business_unit" in options
        # By keyboard, in reading order: label, source, field path, then on to the preview button.
        page.fill("#id_label", "Region")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "id_source_entity"
        page.select_option("#id_source_entity", "case")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "id_field_path"
        page.keyboard.type("custom_fields.hr.region")
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "tag-preview-button":
                break
        assert page.evaluate("document.activeElement.id") == "tag-preview-button"
        page.keyboard.press("Enter")
        page.wait_for_selector("#tag-preview-values", state="visible")
        shown = page.eval_on_selector_all(
            "#tag-preview-values tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
        assert sorted(map(tuple, shown)) == sorted((c.reference, c.custom_fields["hr"]["region"]) for c in cases)
        assert "75.0% of 4 recent cases" in page.text_content("#tag-coverage")
        assert_accessible(page)

        page.click("input[name=_save]")
        page.wait_for_selector("tr[data-slot='4'].configured")
        assert "Region" in page.text_content("tr[data-slot='4']")
        assert "custom_fields.hr.region" in page.text_content("tr[data-slot='4']")

        # The slot is a column of the next export, written by the cluster.
        page.goto(f"{live_server.url}/admin/exports/exportjob/add/")
        assert page.text_content(".fixed-organization") == "Acme"
        assert page.is_checked("#id_include_tags")
        assert_accessible(page)
        page.select_option("#id_dataset", "cases")
        page.select_option("#id_format", "csv")
        page.click("input[name=_save]")
        page.wait_for_selector("#result_list")
        job = ExportJob.objects.get(organization=org)
        assert job.requested_by == user and job.format == "csv"
        wait_for_jobs(job)
        page.reload()
        row = page.locator("#result_list tbody tr").first
        assert "Completed" in (row.text_content() or "")
        assert_accessible(page)
        with page.expect_download() as download_info:
            row.locator("a:text('Download')").click()
        saved = tmp_path / download_info.value.suggested_filename
        download_info.value.save_as(saved)
        rows = list(csv.DictReader(io.StringIO(saved.read_text("utf-8-sig"))))

    tag = TagSlot.objects.get(organization=org, slot=4)
    assert (tag.label, tag.field_path, tag.data_type) == ("Region", "custom_fields.hr.region", "text")
    # The case has a core "Region" column too: the tag's header says it is the tag.
    assert {r["Case reference"]: r["Region (tag)"] for r in rows} == {
        **{c.reference: c.custom_fields["hr"]["region"] for c in cases},
        unset.reference: "",
    }
    assert [t["label"] for t in job.tag_snapshot] == ["Region"]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_viewer_sees_no_add_or_change_buttons_and_forged_urls_are_refused(live_server, settings):
    settings.TASKS_SYNC = False  # the exports the viewer finds were written by the real cluster
    acme, _ = org_with_cases(slug="acme")
    globex, _ = org_with_cases(slug="globex")
    officer = staff("olivia", acme, Role.OFFICER)
    gina = staff("gina", globex, Role.OFFICER)
    staff("victor", acme, Role.VIEWER)
    schedule = make_schedule(acme, officer)
    tag = TagSlot.objects.filter(organization=acme).first()
    assert tag is not None

    with qcluster(), browser_page() as page:
        own = export_job_create(organization=acme, dataset="cases", format="csv", requested_by=officer)
        theirs = export_job_create(organization=globex, dataset="cases", format="csv", requested_by=gina)
        wait_for_jobs(own, theirs)

        admin_login(page, live_server.url, "victor", PASSWORD)
        base = live_server.url

        # Lists: the viewer reads them, without a way to add, change or act on anything.
        lists = {
            "/admin/exports/exportjob/": "Completed",
            "/admin/scheduling/reportschedule/": schedule.name,
            "/admin/cases/case/": Case.objects.filter(organization=acme).first().reference,
            "/admin/audit/auditevent/": "",
        }
        for path, expected in lists.items():
            response = page.goto(f"{base}{path}")
            assert response is not None and response.status == 200, path
            assert page.locator(".object-tools a.addlink").count() == 0, path
            assert page.locator("#changelist-form select[name=action]").count() == 0, path
            text = page.text_content("#content") or ""
            assert expected in text and "Globex" not in text, path
            assert_accessible(page)
        # The sidebar offers no "+ Add" either.
        assert page.locator("#nav-sidebar a.addlink").count() == 0

        # The landing page offers no export form; the operations status reads the same.
        page.goto(f"{base}/admin/")
        assert page.locator("#ws-quick-export").count() == 0
        assert_accessible(page)
        page.goto(f"{base}/admin/ops/status/")
        assert page.is_checked("#ops-auto-refresh")  # a timed reload the reader can switch off
        assert_accessible(page)

        page.goto(f"{base}/admin/tagging/tagslot/")
        assert page.locator("#slots-acme a.configure").count() == 0
        assert page.locator("#slots-acme a:text('Edit')").count() == 0
        assert page.locator("#slots-acme a:text('View')").count() == TagSlot.objects.filter(organization=acme).count()
        assert_accessible(page)

        # A change page opens read-only: no save, no delete.
        response = page.goto(f"{base}/admin/scheduling/reportschedule/{schedule.pk}/change/")
        assert response is not None and response.status == 200
        assert page.locator("input[name=_save], input[name=_continue], a.deletelink").count() == 0
        assert page.locator("form.schedule-do button").count() == 0  # no "Run now" or "Send a test"
        assert_accessible(page)

        # The viewer reads and downloads their organization's files.
        page.goto(f"{base}/admin/exports/exportjob/")
        with page.expect_download() as download_info:
            page.click(f"#result_list a[href*='{own.pk}/download/']")
        assert download_info.value.suggested_filename == own.file_name

        # Forged URLs: pages the viewer may not open are refused, never shown.
        forged = {
            "/admin/exports/exportjob/add/": 403,
            "/admin/scheduling/reportschedule/add/": 403,
            f"/admin/tagging/tagslot/add/?organization={acme.pk}&slot=9": 403,
            "/admin/cases/case/add/": 403,
            f"/admin/scheduling/reportschedule/{schedule.pk}/delete/": 403,
            f"/admin/exports/exportjob/{theirs.pk}/download/": 404,
            f"/admin/exports/exportjob/{theirs.pk}/progress/": 404,
            f"/api/v1/orgs/globex/exports/{theirs.pk}/": 404,
            f"/api/v1/orgs/globex/exports/{theirs.pk}/download/": 404,
            f"/api/v1/orgs/acme/exports/{theirs.pk}/download/": 404,
        }
        answers = {path: page.request.get(f"{base}{path}", max_redirects=0).status for path in forged}
        assert answers == forged

        # Forged writes, with a valid CSRF token: a save of the read-only page and an API export.
        token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
        headers = {"X-CSRFToken": token, "Referer": f"{base}/admin/"}
        saved = page.request.post(
            f"{base}/admin/scheduling/reportschedule/{schedule.pk}/change/",
            form={"csrfmiddlewaretoken": token, "name": "Hijacked", "_save": "Save"},
            headers=headers,
            max_redirects=0,
        )
        created = page.request.post(
            f"{base}/api/v1/orgs/acme/exports/", data={"dataset": "cases", "format": "csv"}, headers=headers
        )
        assert (saved.status, created.status) == (403, 403), (saved.text()[:300], created.text()[:300])

        # Another organization's export page is not shown either: 404, as in the API.
        forged = page.goto(f"{base}/admin/exports/exportjob/{theirs.pk}/change/")
        assert forged is not None and forged.status == 404
        assert theirs.file_name not in (page.text_content("body") or "")

    assert ReportSchedule.objects.get(pk=schedule.pk).name == schedule.name
    assert ExportJob.objects.count() == 2
