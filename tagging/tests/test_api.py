from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from rest_framework.test import APIClient

from audit.models import AuditEvent
from cases.tests.factories import CaseFactory, InvestigationFactory
from organizations.models import Role
from organizations.tests.factories import OrganizationFactory, member
from tagging.models import TagSlot

pytestmark = pytest.mark.django_db

GOOD = {"label": "Region", "source_entity": "case", "field_path": "custom_fields.hr.region", "data_type": "text"}


@pytest.fixture
def org():
    return OrganizationFactory(slug="acme")


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def admin_client(org):
    return api(member(org, Role.ADMIN, username="boss"))


def test_put_creates_then_replaces_and_lists(admin_client, org):
    created = admin_client.put("/api/v1/orgs/acme/tags/3/", GOOD, format="json")
    assert created.status_code == 201
    body = created.json()
    assert {k: body[k] for k in ("slot", "label", "source_entity", "field_path", "data_type", "is_active")} == {
        "slot": 3,
        **GOOD,
        "is_active": True,
    }
    replaced = admin_client.put(
        "/api/v1/orgs/acme/tags/3/", {"label": "BU", "field_path": "business_unit"}, format="json"
    )
    assert replaced.status_code == 200
    assert replaced.json()["data_type"] == "text" and replaced.json()["source_entity"] == "case"
    listing = admin_client.get("/api/v1/orgs/acme/tags/").json()
    assert listing["count"] == 1 and listing["results"][0]["label"] == "BU"
    tag = TagSlot.objects.get(organization=org, slot=3)
    assert tag.field_path == "business_unit" and tag.updated_by.username == "boss"


def test_patch_and_delete_are_audited_with_before_and_after(admin_client, org):
    admin_client.put("/api/v1/orgs/acme/tags/1/", GOOD, format="json")
    patched = admin_client.patch(
        "/api/v1/orgs/acme/tags/1/", {"is_active": False, "label": "Region (HR)"}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["is_active"] is False
    assert admin_client.delete("/api/v1/orgs/acme/tags/1/").status_code == 204
    assert not TagSlot.objects.filter(organization=org).exists()
    assert admin_client.delete("/api/v1/orgs/acme/tags/1/").status_code == 404
    events = list(AuditEvent.objects.filter(organization=org, action__startswith="tag.").order_by("sequence"))
    assert [e.action for e in events] == ["tag.created", "tag.updated", "tag.deleted"]
    assert events[1].details["before"]["label"] == "Region" and events[1].details["after"]["label"] == "Region (HR)"
    assert events[1].details["after"]["is_active"] is False
    assert events[2].details["after"] is None and events[2].actor_label == "boss"


@pytest.mark.parametrize(
    ("slot", "body", "field"),
    [
        (0, GOOD, "slot"),
        (21, GOOD, "slot"),
        (2, {**GOOD, "label": ""}, "label"),
        (2, {**GOOD, "label": "   "}, "label"),
        (2, {**GOOD, "label": "region"}, "label"),  # duplicate of slot 1, ignoring case
        (2, {**GOOD, "field_path": "__class__"}, "field_path"),
        (2, {**GOOD, "field_path": "custom_fields.__dict__"}, "field_path"),
        (2, {**GOOD, "field_path": "assignee"}, "field_path"),
        (2, {**GOOD, "field_path": "primary_riu.reference"}, "field_path"),
        (2, {**GOOD, "field_path": "assignee__password"}, "field_path"),
        (2, {**GOOD, "field_path": "no_such_field"}, "field_path"),
        (2, {**GOOD, "field_path": "custom_fields..x"}, "field_path"),
        (2, {**GOOD, "field_path": "custom_fields."}, "field_path"),
        (2, {**GOOD, "field_path": ""}, "field_path"),
        (2, {**GOOD, "source_entity": "person"}, "source_entity"),
        (2, {**GOOD, "data_type": "money"}, "data_type"),
        (2, {**GOOD, "sensitivity": "secret"}, "sensitivity"),
        (2, {**GOOD, "sensitivity": ""}, "sensitivity"),
    ],
)
def test_bad_input_is_400_with_field_key_and_stores_nothing(admin_client, org, slot, body, field):
    admin_client.put("/api/v1/orgs/acme/tags/1/", GOOD, format="json")
    before_events = AuditEvent.objects.count()
    response = admin_client.put(f"/api/v1/orgs/acme/tags/{slot}/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert list(TagSlot.objects.values_list("slot", flat=True)) == [1]
    assert AuditEvent.objects.count() == before_events


def test_sensitivity_defaults_to_standard_and_put_patch_get_carry_it(admin_client, org):
    created = admin_client.put("/api/v1/orgs/acme/tags/4/", GOOD, format="json")
    assert created.status_code == 201 and created.json()["sensitivity"] == "standard"
    phone = {"label": "Reporter phone", "field_path": "custom_fields.reporter.phone", "sensitivity": "identity"}
    replaced = admin_client.put("/api/v1/orgs/acme/tags/4/", phone, format="json")
    assert replaced.status_code == 200 and replaced.json()["sensitivity"] == "identity"
    assert admin_client.get("/api/v1/orgs/acme/tags/4/").json()["sensitivity"] == "identity"
    assert admin_client.get("/api/v1/orgs/acme/tags/").json()["results"][0]["sensitivity"] == "identity"
    tag = TagSlot.objects.get(organization=org, slot=4)
    assert tag.snapshot() == {
        "slot": 4,
        "label": "Reporter phone",
        "source_entity": "case",
        "field_path": "custom_fields.reporter.phone",
        "data_type": "text",
        "sensitivity": "identity",
    }
    # A PATCH of another field keeps it; a PUT that leaves it out resets it, like every field.
    assert (
        admin_client.patch("/api/v1/orgs/acme/tags/4/", {"label": "Phone"}, format="json").json()["sensitivity"]
        == "identity"
    )
    patched = admin_client.patch("/api/v1/orgs/acme/tags/4/", {"sensitivity": "standard"}, format="json")
    assert patched.status_code == 200 and patched.json()["sensitivity"] == "standard"
    admin_client.patch("/api/v1/orgs/acme/tags/4/", {"sensitivity": "identity"}, format="json")
    null = admin_client.put("/api/v1/orgs/acme/tags/4/", {**phone, "sensitivity": None}, format="json")
    assert null.status_code == 400 and "sensitivity" in null.json()
    without = {k: v for k, v in phone.items() if k != "sensitivity"}
    reset = admin_client.put("/api/v1/orgs/acme/tags/4/", without, format="json")
    assert reset.status_code == 200 and reset.json()["sensitivity"] == "standard"
    assert TagSlot.objects.get(organization=org, slot=4).sensitivity == "standard"


def test_sensitivity_changes_are_audited_with_before_and_after(admin_client, org):
    admin_client.put("/api/v1/orgs/acme/tags/1/", GOOD, format="json")
    admin_client.patch("/api/v1/orgs/acme/tags/1/", {"sensitivity": "identity"}, format="json")
    event = AuditEvent.objects.filter(organization=org, action="tag.updated").get()
    assert event.details["before"]["sensitivity"] == "standard"
    assert event.details["after"]["sensitivity"] == "identity"
    created = AuditEvent.objects.filter(organization=org, action="tag.created").get()
    assert created.details["after"]["sensitivity"] == "standard"


def test_patch_with_bad_sensitivity_is_400_and_changes_nothing(admin_client, org):
    admin_client.put("/api/v1/orgs/acme/tags/1/", {**GOOD, "sensitivity": "identity"}, format="json")
    before_events = AuditEvent.objects.count()
    response = admin_client.patch("/api/v1/orgs/acme/tags/1/", {"sensitivity": "IDENTITY"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["sensitivity"]
    assert TagSlot.objects.get().sensitivity == "identity"
    assert AuditEvent.objects.count() == before_events


def test_database_refuses_an_unknown_sensitivity(org):
    with pytest.raises(IntegrityError), transaction.atomic():
        TagSlot.objects.create(organization=org, slot=1, label="X", field_path="title", sensitivity="secret")


def test_patch_with_bad_path_is_400_and_changes_nothing(admin_client, org):
    admin_client.put("/api/v1/orgs/acme/tags/1/", {**GOOD, "field_path": "business_unit"}, format="json")
    response = admin_client.patch("/api/v1/orgs/acme/tags/1/", {"source_entity": "riu"}, format="json")
    assert response.status_code == 400
    assert response.json()["field_path"] == [
        "Unknown field 'business_unit' for a riu: use one of reference, riu_type, received_at, "
        "reporter_relationship, language, is_anonymous, or custom_fields.<key>."
    ]
    assert TagSlot.objects.get().source_entity == "case"


def test_twenty_slots_at_most(admin_client, org):
    for n in range(1, 21):
        assert (
            admin_client.put(f"/api/v1/orgs/acme/tags/{n}/", {**GOOD, "label": f"T{n}"}, format="json").status_code
            == 201
        )
    assert admin_client.put("/api/v1/orgs/acme/tags/21/", {**GOOD, "label": "T21"}, format="json").status_code == 400
    assert TagSlot.objects.filter(organization=org).count() == 20


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OFFICER])
def test_viewers_and_officers_read_but_cannot_write(org, role):
    TagSlot.objects.create(organization=org, slot=1, label="Region", field_path="business_unit")
    client = api(member(org, role))
    assert client.get("/api/v1/orgs/acme/tags/").status_code == 200
    assert client.get("/api/v1/orgs/acme/tags/1/").status_code == 200
    assert client.put("/api/v1/orgs/acme/tags/2/", GOOD, format="json").status_code == 403
    assert client.patch("/api/v1/orgs/acme/tags/1/", {"label": "x"}, format="json").status_code == 403
    assert client.delete("/api/v1/orgs/acme/tags/1/").status_code == 403
    assert (
        client.post(
            "/api/v1/orgs/acme/tags/preview/", {"source_entity": "case", "field_path": "title"}, format="json"
        ).status_code
        == 200
    )


def test_other_organization_is_404_everywhere(org):
    other = OrganizationFactory(slug="other")
    TagSlot.objects.create(organization=other, slot=1, label="Secret", field_path="business_unit")
    client = api(member(org, Role.ADMIN))
    for method, path in [
        ("get", "tags/"),
        ("get", "tags/1/"),
        ("put", "tags/1/"),
        ("delete", "tags/1/"),
        ("post", "tags/preview/"),
        ("get", "tags/fields/"),
    ]:
        response = getattr(client, method)(f"/api/v1/orgs/other/{path}", GOOD, format="json")
        assert response.status_code == 404, (method, path)
    assert TagSlot.objects.get(organization=other).label == "Secret"


def test_preview_returns_real_values_and_coverage(admin_client, org):
    regions = ["EMEA", None, "APAC", "AMER", None]
    cases = []
    for i, region in enumerate(regions):
        cf = {"hr": {"region": region}} if region else {"other": 1}
        cases.append(CaseFactory(organization=org, custom_fields=cf, reference=f"CASE-P-{i}"))
    CaseFactory(organization=OrganizationFactory(), custom_fields={"hr": {"region": "LEAK"}})
    body = admin_client.post(
        "/api/v1/orgs/acme/tags/preview/",
        {"source_entity": "case", "field_path": "custom_fields.hr.region"},
        format="json",
    ).json()
    expected = {(c.reference, c.custom_fields["hr"]["region"]) for c in cases if "hr" in c.custom_fields}
    assert {(v["case_reference"], v["value"]) for v in body["values"]} == expected
    assert body["coverage"] == pytest.approx(3 / 5)


def test_preview_of_latest_investigation_and_riu(admin_client, org):
    case = CaseFactory(organization=org, reference="CASE-INV")
    InvestigationFactory(case=case, number=1, custom_fields={"interviews": 2})
    InvestigationFactory(case=case, number=2, custom_fields={"interviews": 7})
    inv = admin_client.post(
        "/api/v1/orgs/acme/tags/preview/",
        {"source_entity": "investigation", "field_path": "custom_fields.interviews", "data_type": "number"},
        format="json",
    ).json()
    assert inv == {"values": [{"case_reference": "CASE-INV", "value": "7"}], "coverage": 1.0, "sampled": 1}
    riu = admin_client.post(
        "/api/v1/orgs/acme/tags/preview/",
        {"source_entity": "riu", "field_path": "custom_fields.caller.callback_requested", "data_type": "boolean"},
        format="json",
    ).json()
    assert riu["values"] == [{"case_reference": "CASE-INV", "value": "Yes"}]


def test_preview_bad_path_is_400(admin_client):
    response = admin_client.post(
        "/api/v1/orgs/acme/tags/preview/", {"source_entity": "case", "field_path": "assignee.password"}, format="json"
    )
    assert response.status_code == 400 and "field_path" in response.json()


def test_discovery_lists_core_and_custom_paths_with_real_coverage(admin_client, org):
    CaseFactory(organization=org, custom_fields={"hr": {"region": "EMEA", "grade": 7}, "tags": ["a", "b"]})
    CaseFactory(organization=org, custom_fields={"hr": {"region": "APAC"}})
    CaseFactory(organization=org, custom_fields={})
    CaseFactory(organization=OrganizationFactory(), custom_fields={"secret": {"key": "x"}})
    body = admin_client.get("/api/v1/orgs/acme/tags/fields/?source_entity=case").json()
    by_path = {f["field_path"]: f for f in body["fields"]}
    assert by_path["custom_fields.hr.region"]["coverage"] == pytest.approx(2 / 3, abs=1e-4)
    assert by_path["custom_fields.hr.grade"] == {
        "field_path": "custom_fields.hr.grade",
        "kind": "custom",
        "coverage": pytest.approx(1 / 3, abs=1e-4),
        "example": "7",
        "suggested_data_type": "number",
    }
    assert by_path["custom_fields.tags"]["suggested_data_type"] == "list"
    assert by_path["business_unit"]["kind"] == "core" and by_path["business_unit"]["coverage"] == 1.0
    assert "custom_fields.secret.key" not in by_path
    assert "assignee" not in by_path
    assert admin_client.get("/api/v1/orgs/acme/tags/fields/?source_entity=nope").status_code == 400
