"""An officer sets up a monthly report in a real browser, watching the next runs as they type."""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User

from organizations.models import Role
from organizations.tests.factories import MembershipFactory, OrganizationFactory
from scheduling.models import ReportSchedule
from tests.browser import admin_login, assert_accessible, browser_page, schedule_rule_fill

RUNS = "#schedule-next-runs li"
SCREENSHOTS = os.environ.get("SCREENSHOT_DIR", "/tmp")


def first_run(page):
    return page.text_content(f"{RUNS}:first-child .run-local") or ""


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_officer_adds_a_monthly_schedule_with_live_next_runs(live_server):
    org = OrganizationFactory(name="Acme", slug="acme", timezone="Europe/London")
    user = User.objects.create_user("olivia", email="olivia@acme.example", password="pw-for-browser", is_staff=True)
    MembershipFactory(user=user, organization=org, role=Role.OFFICER)

    with browser_page() as page:
        admin_login(page, live_server.url, "olivia", "pw-for-browser")
        page.goto(f"{live_server.url}/admin/scheduling/reportschedule/")
        assert_accessible(page)
        page.click("text=Add report schedule")
        page.wait_for_selector("#id_kind")
        assert page.input_value("#id_organization") == str(org.pk)  # the only organization, preselected

        # The rule's inputs follow the kind: a weekly rule asks for a weekday, a monthly one for a day.
        page.select_option("#id_kind", "weekly")
        assert page.is_visible("#id_day_of_week") and not page.is_visible("#id_day_of_month")
        page.select_option("#id_kind", "monthly")
        assert page.is_visible("#id_day_of_month") and not page.is_visible("#id_day_of_week")
        assert not page.is_visible("#id_cron")

        page.fill("#id_name", "Monthly board pack")
        page.select_option("#id_format", "csv")
        schedule_rule_fill(page, day="last", time="08:00")
        london = page.eval_on_selector_all(RUNS, "items => items.map(i => i.textContent)")
        assert len(london) == 5
        assert "08:00 +00:00" in london[0] or "08:00 +01:00" in london[0], london
        assert all(" UTC" in text for text in london)
        assert "Local times are in Europe/London." in page.text_content("#schedule-preview-status")
        assert_accessible(page)

        # A zone the server does not know: the API's words are shown, and no runs.
        page.fill("#id_timezone", "Mars/Olympus_Mons")
        page.wait_for_selector("#schedule-preview-error", state="visible")
        assert "is not a known IANA timezone" in page.text_content("#schedule-preview-error")
        assert_accessible(page)  # the error is announced and readable too
        assert page.locator(RUNS).count() == 0

        page.fill("#id_timezone", "America/New_York")
        page.wait_for_function(
            "(() => { const li = document.querySelector('#schedule-next-runs li');"
            " return li && /-0[45]:00$/.test(li.dataset.iso); })()"
        )
        new_york = page.eval_on_selector_all(RUNS, "items => items.map(i => i.textContent)")
        assert len(new_york) == 5 and new_york != london
        assert "08:00 -04:00" in new_york[0] or "08:00 -05:00" in new_york[0], new_york
        assert not page.is_visible("#schedule-preview-error")

        page.fill("#id_recipients", "audit@example.com\nboard@example.com")
        page.screenshot(path=f"{SCREENSHOTS}/schedule-add-form.png", full_page=True)

        page.click("input[name=_save]")
        page.wait_for_selector("#result_list")
        row = page.locator("#result_list tbody tr", has_text="Monthly board pack")
        text = row.text_content() or ""
        schedule = ReportSchedule.objects.get(name="Monthly board pack")
        local = schedule.next_run_at.astimezone(ZoneInfo("America/New_York"))
        assert "Monthly on the last day at 08:00" in text and "America/New_York" in text
        assert f"{local:%a %d %b %Y} 08:00" in text and f"{schedule.next_run_at:%Y-%m-%d %H:%M} UTC" in text
        assert "Active" in text and "olivia" in text
        page.set_viewport_size({"width": 1600, "height": 900})
        page.screenshot(path=f"{SCREENSHOTS}/schedule-list.png", full_page=True)
        assert_accessible(page)

        # The change page: the same live preview, and a test sent to oneself lands in the run history.
        page.click("#result_list a:text('Monthly board pack')")
        page.wait_for_function("document.querySelectorAll('#schedule-next-runs li').length === 5")
        assert "-0" in first_run(page)
        page.click("form.schedule-do button:text('Send a test to me')")
        page.wait_for_selector(".messagelist .success")
        assert "goes to olivia@acme.example only" in page.text_content(".messagelist")
        history = page.text_content("#runs-group") or ""
        assert "Manual" in history and "Success" in history and "olivia@acme.example" in history
        assert "Sent" in history and "1 attempt" in history
        assert_accessible(page)
        page.screenshot(path=f"{SCREENSHOTS}/schedule-change-form.png", full_page=True)

        page.click("#runs-group a.inlineviewlink")
        page.wait_for_selector("#deliveries-group")
        deliveries = page.text_content("#deliveries-group") or ""
        assert "olivia@acme.example" in deliveries and "Sent" in deliveries
        assert page.locator("input[name=_save]").count() == 0
        assert_accessible(page)
        page.screenshot(path=f"{SCREENSHOTS}/schedule-run.png", full_page=True)

    assert schedule.schedule == {"kind": "monthly", "time": "08:00", "day_of_month": "last"}
    assert schedule.timezone == "America/New_York" and schedule.owner == user
    assert schedule.recipients == ["audit@example.com", "board@example.com"]
