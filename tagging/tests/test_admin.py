from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from cases.tests.factories import CaseFactory
from organizations.models import Role
from organizations.tests.factories import OrganizationFactory, member
from tagging.models import TagSlot

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    org = OrganizationFactory(name="Acme", slug="acme")
    other = OrganizationFactory(name="Globex", slug="globex")
    CaseFactory(organization=org, custom_fields={"hr": {"region": "EMEA"}})
    CaseFactory(organization=other, custom_fields={"secret_globex_key": "classified"})
    TagSlot.objects.create(organization=org, slot=2, label="Acme BU", field_path="business_unit")
    TagSlot.objects.create(
        organization=other, slot=1, label="Globex Secret", field_path="custom_fields.secret_globex_key"
    )
    client = Client()
    client.force_login(member(org, Role.ADMIN))
    return org, other, client


def form_data(org, **overrides):
    data = {
        "organization": org.pk,
        "slot": 5,
        "label": "Region",
        "source_entity": "case",
        "field_path": "custom_fields.hr.region",
        "data_type": "text",
        "sensitivity": "standard",
        "is_active": "on",
    }
    data.update(overrides)
    return data


def test_slot_screen_shows_all_twenty_slots_of_own_organization_only(setup):
    org, other, client = setup
    html = client.get("/admin/tagging/tagslot/").content.decode()
    assert html.count('data-slot="') == 20
    assert "Acme BU" in html and "Globex" not in html and "Configure" in html


def test_add_form_offers_discovered_paths_of_own_organization_only(setup):
    org, other, client = setup
    html = client.get(f"/admin/tagging/tagslot/add/?organization={org.pk}&slot=5").content.decode()
    assert "custom_fields.hr.region" in html
    assert "secret_globex_key" not in html and "Globex" not in html
    assert 'list="tag-field-paths"' in html


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"slot": 0}, "Slot must be between 1 and 20."),
        ({"slot": 21}, "Slot must be between 1 and 20."),
        ({"label": "acme bu"}, "already labelled"),
        ({"label": ""}, "This field is required."),
        ({"field_path": "assignee"}, "is a relation, not a value"),
        ({"field_path": "custom_fields..x"}, "Empty key in the path"),
        ({"field_path": "__class__"}, "are not allowed"),
        ({"source_entity": "person"}, "Select a valid choice"),
        ({"data_type": "money"}, "Select a valid choice"),
        ({"sensitivity": "secret"}, "Select a valid choice"),
        ({"slot": 2}, "already exists"),
    ],
)
def test_admin_form_errors_in_plain_words_and_nothing_saved(setup, overrides, message):
    org, other, client = setup
    response = client.post("/admin/tagging/tagslot/add/", form_data(org, **overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert TagSlot.objects.filter(organization=org).count() == 1


def test_admin_cannot_add_a_slot_to_another_organization(setup):
    org, other, client = setup
    response = client.post("/admin/tagging/tagslot/add/", form_data(other))
    assert "Select a valid choice" in response.content.decode()
    assert TagSlot.objects.filter(organization=other).count() == 1


def test_admin_save_goes_through_the_service_and_is_audited(setup):
    org, other, client = setup
    response = client.post("/admin/tagging/tagslot/add/", form_data(org))
    assert response.status_code == 302
    tag = TagSlot.objects.get(organization=org, slot=5)
    assert tag.label == "Region" and tag.field_path == "custom_fields.hr.region"
    event = AuditEvent.objects.filter(organization=org, action="tag.created").get()
    assert event.details["after"]["field_path"] == "custom_fields.hr.region"


def test_officer_sees_slots_but_cannot_configure(setup):
    org, other, _ = setup
    client = Client()
    client.force_login(member(org, Role.OFFICER))
    html = client.get("/admin/tagging/tagslot/").content.decode()
    assert "Acme BU" in html and "Configure" not in html
    assert client.get("/admin/tagging/tagslot/add/").status_code == 403
