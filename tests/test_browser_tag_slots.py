"""A compliance admin configures a tag slot in a real browser."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from cases.tests.factories import CaseFactory
from organizations.models import Role
from organizations.tests.factories import MembershipFactory, OrganizationFactory
from tagging.models import TagSlot
from tests.browser import admin_login, browser_page


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_admin_configures_a_slot_with_discovery_and_preview(live_server, tmp_path):
    org = OrganizationFactory(name="Acme", slug="acme")
    cases = [
        CaseFactory(organization=org, custom_fields={"hr": {"region": region}}) for region in ["EMEA", "APAC", "AMER"]
    ]
    CaseFactory(organization=org, custom_fields={})
    user = User.objects.create_user("compliance", password="pw-for-browser", is_staff=True)
    MembershipFactory(user=user, organization=org, role=Role.ADMIN)

    with browser_page() as page:
        admin_login(page, live_server.url, "compliance", "pw-for-browser")
        page.goto(f"{live_server.url}/admin/tagging/tagslot/")
        assert page.locator("tr[data-slot]").count() == 20
        page.click("tr[data-slot='4'] a.configure")
        page.wait_for_selector("#id_field_path")

        options = page.eval_on_selector_all("#tag-field-paths option", "els => els.map(e => e.value)")
        assert "custom_fields.hr.region" in options and "business_unit" in options
        page.fill("#id_label", "Region")
        page.select_option("#id_source_entity", "case")
        page.fill("#id_field_path", "custom_fields.hr.region")
        page.click("#tag-preview-button")
        page.wait_for_selector("#tag-preview-values", state="visible")
        shown = page.eval_on_selector_all(
            "#tag-preview-values tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
        assert sorted(map(tuple, shown)) == sorted((c.reference, c.custom_fields["hr"]["region"]) for c in cases)
        assert "75.0% of 4 recent cases" in page.text_content("#tag-coverage")
        page.screenshot(path=str(tmp_path / "tag-slot-form.png"), full_page=True)

        page.click("input[name=_save]")
        page.wait_for_selector("tr[data-slot='4'].configured")
        assert "Region" in page.text_content("tr[data-slot='4']")
        assert "custom_fields.hr.region" in page.text_content("tr[data-slot='4']")

    tag = TagSlot.objects.get(organization=org, slot=4)
    assert (tag.label, tag.field_path, tag.data_type) == ("Region", "custom_fields.hr.region", "text")
