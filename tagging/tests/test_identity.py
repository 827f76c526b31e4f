"""Identity tags: the preview and path discovery show pseudonyms to members without identity
access, and the same pseudonyms exports compute from a tag snapshot."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from cases.tests.factories import CaseFactory
from organizations.models import Organization, Role
from organizations.pseudonyms import PATTERN, pseudonym
from organizations.tests.factories import MembershipFactory, OrganizationFactory, UserFactory, member
from tagging.models import TagSlot
from tagging.resolution import compile_tags, pseudonymise_raw

pytestmark = pytest.mark.django_db

PREVIEW = "/api/v1/orgs/acme/tags/preview/"
PHONE = {"source_entity": "case", "field_path": "custom_fields.reporter.phone"}
PHONES = ["+44 7700 900123", "+44 7700 900456"]


@pytest.fixture
def org():
    org = OrganizationFactory(slug="acme")
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    for i, phone in enumerate(PHONES):  # CASE-ID-1 is the newer: it gives discovery's examples
        CaseFactory(
            organization=org,
            reference=f"CASE-ID-{i}",
            created_at=start + dt.timedelta(days=i),
            custom_fields={"reporter": {"phone": phone, "name": f"Reporter {i}"}, "hr": {"region": "EMEA"}},
        )
    CaseFactory(organization=org, reference="CASE-ID-X", created_at=start, custom_fields={"hr": {"region": "APAC"}})
    return org


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def uncleared(org) -> APIClient:
    """An admin without identity access: may configure tags, may not read identities."""
    return api(member(org, Role.ADMIN))


@pytest.fixture
def cleared(org) -> APIClient:
    return api(MembershipFactory(organization=org, role=Role.VIEWER, identity_access=True).user)


def expected(org: Organization, column: str, value: str) -> str:
    """The pseudonym computed straight from the organization's key, not through tagging."""
    result = pseudonym(key=bytes(org.pseudonym_key), column=column, value=value)
    assert result is not None
    return result


def preview(client: APIClient, body: dict) -> dict:
    response = client.post(PREVIEW, body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_preview_asked_as_identity_shows_pseudonyms_to_a_member_without_access(org, uncleared):
    body = preview(uncleared, {**PHONE, "sensitivity": "identity"})
    values = {v["case_reference"]: v["value"] for v in body["values"]}
    assert values == {
        f"CASE-ID-{i}": expected(org, "case.custom_fields.reporter.phone", phone) for i, phone in enumerate(PHONES)
    }
    assert all(re.match(PATTERN, v) for v in values.values())
    assert values["CASE-ID-0"] != values["CASE-ID-1"]
    assert body["coverage"] == pytest.approx(2 / 3, abs=1e-4) and body["sampled"] == 3


@pytest.mark.parametrize("asked", [{}, {"sensitivity": "standard"}])
def test_preview_of_an_identity_slots_path_is_pseudonymised_whatever_the_request_says(org, uncleared, asked):
    TagSlot.objects.create(organization=org, slot=7, label="Phone", sensitivity="identity", is_active=False, **PHONE)
    values = [v["value"] for v in preview(uncleared, {**PHONE, **asked})["values"]]
    assert len(values) == 2 and all(re.match(PATTERN, v) for v in values), values
    assert not set(values) & set(PHONES)


def test_preview_of_paths_around_an_identity_slot_does_not_reveal_it(org, uncleared):
    TagSlot.objects.create(organization=org, slot=7, label="Phone", sensitivity="identity", **PHONE)
    # The parent object holds the phone in its JSON text: it is pseudonymised as one value.
    parent = preview(uncleared, {"source_entity": "case", "field_path": "custom_fields.reporter"})
    assert [v["value"] for v in parent["values"]] and all(re.match(PATTERN, v["value"]) for v in parent["values"])
    assert not any(phone in str(parent) for phone in PHONES)
    # A child of it is part of it.
    TagSlot.objects.create(
        organization=org, slot=8, label="Caller", sensitivity="identity", field_path="custom_fields.caller"
    )
    caller = {"source_entity": "riu", "field_path": "custom_fields.caller.callback_requested"}
    assert preview(uncleared, caller)["values"][0]["value"] == "Yes"  # the slot reads the case, not the RIU
    TagSlot.objects.filter(slot=8).update(source_entity="riu")
    assert preview(uncleared, caller)["values"][0]["value"] == expected(
        org, "riu.custom_fields.caller.callback_requested", "true"
    )
    # A sibling path and a path that only starts with the same letters are not identity.
    sibling = preview(uncleared, {"source_entity": "case", "field_path": "custom_fields.reporter.name"})
    assert sorted(v["value"] for v in sibling["values"]) == ["Reporter 0", "Reporter 1"]
    CaseFactory(organization=org, reference="CASE-PX", custom_fields={"reporter": {"phone_type": "mobile"}})
    prefix = preview(uncleared, {"source_entity": "case", "field_path": "custom_fields.reporter.phone_type"})
    assert prefix["values"] == [{"case_reference": "CASE-PX", "value": "mobile"}]


def test_preview_shows_real_values_to_a_member_with_identity_access(org, cleared):
    TagSlot.objects.create(organization=org, slot=7, label="Phone", sensitivity="identity", **PHONE)
    for asked in ({}, {"sensitivity": "identity"}):
        values = sorted(v["value"] for v in preview(cleared, {**PHONE, **asked})["values"])
        assert values == sorted(PHONES)


def test_superuser_sees_real_values(org):
    root = UserFactory(is_superuser=True)
    values = sorted(v["value"] for v in preview(api(root), {**PHONE, "sensitivity": "identity"})["values"])
    assert values == sorted(PHONES)


def test_standard_tags_are_unchanged_next_to_an_identity_slot(org, uncleared):
    TagSlot.objects.create(organization=org, slot=7, label="Phone", sensitivity="identity", **PHONE)
    body = preview(uncleared, {"source_entity": "case", "field_path": "custom_fields.hr.region"})
    assert {(v["case_reference"], v["value"]) for v in body["values"]} == {
        ("CASE-ID-0", "EMEA"),
        ("CASE-ID-1", "EMEA"),
        ("CASE-ID-X", "APAC"),
    }


def test_same_person_same_pseudonym_across_cases_and_spellings_but_not_across_organizations(org, uncleared):
    CaseFactory(organization=org, reference="CASE-ID-2", custom_fields={"reporter": {"email": "Ana@Example.com "}})
    CaseFactory(organization=org, reference="CASE-ID-3", custom_fields={"reporter": {"email": "ana@example.com"}})
    CaseFactory(organization=org, reference="CASE-ID-4", custom_fields={"reporter": {"email": "bo@example.com"}})
    email = {"source_entity": "case", "field_path": "custom_fields.reporter.email", "sensitivity": "identity"}
    values = {v["case_reference"]: v["value"] for v in preview(uncleared, email)["values"]}
    same = expected(org, "case.custom_fields.reporter.email", "ana@example.com")
    assert values["CASE-ID-2"] == values["CASE-ID-3"] == same
    assert values["CASE-ID-4"] != values["CASE-ID-2"]

    other = OrganizationFactory(slug="globex")
    CaseFactory(organization=other, custom_fields={"reporter": {"email": "ana@example.com"}})
    theirs = api(member(other, Role.ADMIN)).post("/api/v1/orgs/globex/tags/preview/", email, format="json").json()
    assert re.match(PATTERN, theirs["values"][0]["value"])
    assert theirs["values"][0]["value"] != values["CASE-ID-3"]


def test_a_list_pseudonymises_each_person_and_joins_them(org, uncleared):
    CaseFactory(
        organization=org, reference="CASE-LIST", custom_fields={"witnesses": ["Ana Silva", None, "", "Bo Chen"]}
    )
    body = preview(
        uncleared,
        {
            "source_entity": "case",
            "field_path": "custom_fields.witnesses",
            "data_type": "list",
            "sensitivity": "identity",
        },
    )
    column = "case.custom_fields.witnesses"
    assert body["values"] == [
        {
            "case_reference": "CASE-LIST",
            "value": f"{expected(org, column, 'Ana Silva')}; {expected(org, column, 'Bo Chen')}",
        }
    ]


def test_preview_shows_the_pseudonyms_an_export_computes_from_the_snapshot(org, uncleared):
    CaseFactory(organization=org, reference="CASE-NUM", custom_fields={"reporter": {"employee_no": 40711}})
    tag = TagSlot.objects.create(
        organization=org,
        slot=12,
        label="Employee no.",
        field_path="custom_fields.reporter.employee_no",
        data_type="number",
        sensitivity="identity",
    )
    (compiled,) = compile_tags([tag.snapshot()])
    exported = pseudonymise_raw(40711, key=bytes(org.pseudonym_key), column=compiled.pseudonym_column)
    body = preview(uncleared, {"source_entity": "case", "field_path": tag.field_path, "data_type": "number"})
    assert body["values"] == [{"case_reference": "CASE-NUM", "value": exported}]
    assert exported == expected(org, "case.custom_fields.reporter.employee_no", "40711")


def test_preview_rejects_an_unknown_sensitivity(org, uncleared):
    response = uncleared.post(PREVIEW, {**PHONE, "sensitivity": "secret"}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["sensitivity"]


def fields(client: APIClient) -> dict[str, dict]:
    response = client.get("/api/v1/orgs/acme/tags/fields/?source_entity=case")
    assert response.status_code == 200
    return {f["field_path"]: f for f in response.json()["fields"]}


def test_discovery_pseudonymises_examples_of_identity_paths_for_members_without_access(org, uncleared, cleared):
    TagSlot.objects.create(
        organization=org, slot=7, label="Reporter", sensitivity="identity", field_path="custom_fields.reporter"
    )
    hidden = fields(uncleared)
    newest = 1  # the most recent case with a value gives the example
    assert hidden["custom_fields.reporter.phone"]["example"] == expected(
        org, "case.custom_fields.reporter.phone", PHONES[newest]
    )
    assert hidden["custom_fields.reporter.name"]["example"] == expected(
        org, "case.custom_fields.reporter.name", f"Reporter {newest}"
    )
    assert hidden["custom_fields.reporter.phone"]["coverage"] == pytest.approx(2 / 3, abs=1e-4)
    assert hidden["custom_fields.hr.region"]["example"] in {"EMEA", "APAC"}

    shown = fields(cleared)
    assert shown["custom_fields.reporter.phone"]["example"] == PHONES[newest]
    assert shown["custom_fields.reporter.name"]["example"] == f"Reporter {newest}"


def test_discovery_without_identity_slots_shows_real_examples(org, uncleared):
    assert fields(uncleared)["custom_fields.reporter.phone"]["example"] in PHONES


def test_admin_form_offers_sensitivity_and_pseudonymised_examples(org):
    TagSlot.objects.create(organization=org, slot=7, label="Phone", sensitivity="identity", **PHONE)
    client = Client()
    client.force_login(member(org, Role.ADMIN))
    html = client.get(f"/admin/tagging/tagslot/add/?organization={org.pk}&slot=5").content.decode()
    assert 'name="sensitivity"' in html and "names or identifies a person" in html
    assert not any(phone in html for phone in PHONES)
    assert expected(org, "case.custom_fields.reporter.phone", PHONES[1]) in html
    assert "Reporter 1" in html  # a sibling path is not identity


def test_admin_saves_sensitivity_through_the_service(org):
    client = Client()
    client.force_login(member(org, Role.ADMIN))
    response = client.post(
        "/admin/tagging/tagslot/add/",
        {
            "organization": org.pk,
            "slot": 5,
            "label": "Reporter email",
            "source_entity": "case",
            "field_path": "custom_fields.reporter.email",
            "data_type": "text",
            "sensitivity": "identity",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    assert TagSlot.objects.get(organization=org, slot=5).sensitivity == "identity"
