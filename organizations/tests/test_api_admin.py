"""Organization settings, members and the pseudonym key over the API (admin role)."""

from __future__ import annotations

import base64
import json

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.services import canonical_json
from config.errors import ApplicationError
from organizations.models import Membership, Organization, Role
from organizations.pseudonyms import pseudonym
from organizations.services import organization_update
from organizations.tests.factories import MembershipFactory, OrganizationFactory, UserFactory, member

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def acme():
    org = OrganizationFactory(slug="acme", name="Acme", timezone="Europe/London")
    org.allowed_recipient_domains = ["acme.com"]
    org.save()
    return org


@pytest.fixture
def people(acme):
    globex = OrganizationFactory(slug="globex", name="Globex")
    return {
        "admin": member(acme, Role.ADMIN, "alice"),
        "officer": member(acme, Role.OFFICER, "oscar"),
        "viewer": member(acme, Role.VIEWER, "vera"),
        "outsider": member(globex, Role.ADMIN, "gus"),
    }


def state(org: Organization) -> tuple:
    """Everything the endpoints may change, to assert that a refused request changed nothing."""
    org.refresh_from_db()
    members = sorted(
        Membership.objects.filter(organization=org).values_list("user__username", "role", "identity_access")
    )
    events = list(AuditEvent.objects.filter(organization=org).values_list("action", flat=True))
    settings = (org.timezone, org.allowed_recipient_domains, org.delivery_policy, org.link_access)
    return settings, bytes(org.pseudonym_key), members, events


ENDPOINTS = [
    ("patch", "/api/v1/orgs/acme/", {"timezone": "Europe/Paris"}, 200),
    ("patch", "/api/v1/orgs/acme/", {"delivery_policy": "protected", "link_access": "members_only"}, 200),
    ("get", "/api/v1/orgs/acme/members/", None, 200),
    ("patch", "/api/v1/orgs/acme/members/oscar/", {"identity_access": True}, 200),
    ("post", "/api/v1/orgs/acme/pseudonym-key/rotate/", None, 204),
]


@pytest.mark.parametrize(("method", "path", "body", "ok"), ENDPOINTS)
@pytest.mark.parametrize(("who", "expected"), [("outsider", 404), ("viewer", 403), ("officer", 403)])
def test_endpoints_refuse_non_members_and_lower_roles_and_change_nothing(
    acme, people, method, path, body, ok, who, expected
):
    before = state(acme)
    response = getattr(client_for(people[who]), method)(path, body, format="json")
    assert response.status_code == expected
    if expected == 403:
        assert "needs admin" in response.json()["detail"]
    assert state(acme) == before


@pytest.mark.parametrize(("method", "path", "body", "ok"), ENDPOINTS)
def test_endpoints_allow_the_admin(acme, people, method, path, body, ok):
    response = getattr(client_for(people["admin"]), method)(path, body, format="json")
    assert response.status_code == ok


@pytest.mark.parametrize(("method", "path", "body", "ok"), ENDPOINTS)
def test_endpoints_need_authentication(acme, people, method, path, body, ok):
    response = getattr(APIClient(), method)(path, body, format="json")
    assert response.status_code in (401, 403)


# --- PATCH /orgs/{org}/ ----------------------------------------------------------------------


def test_org_get_shows_allowed_recipient_domains_to_every_member(acme, people):
    body = client_for(people["viewer"]).get("/api/v1/orgs/acme/").json()
    assert body == {
        "slug": "acme",
        "name": "Acme",
        "timezone": "Europe/London",
        "allowed_recipient_domains": ["acme.com"],
        "delivery_policy": "any",
        "link_access": "anyone_with_link",
        "role": "viewer",
    }


def test_org_patch_changes_settings_and_audits_before_and_after(acme, people):
    response = client_for(people["admin"]).patch(
        "/api/v1/orgs/acme/",
        {"timezone": "America/New_York", "allowed_recipient_domains": [" Partner.ORG ", "@acme.com", "acme.com."]},
        format="json",
    )
    assert response.status_code == 200
    assert response.json() == {
        "slug": "acme",
        "name": "Acme",
        "timezone": "America/New_York",
        "allowed_recipient_domains": ["partner.org", "acme.com"],
        "delivery_policy": "any",
        "link_access": "anyone_with_link",
        "role": "admin",
    }
    acme.refresh_from_db()
    assert acme.timezone == "America/New_York"
    assert acme.allowed_recipient_domains == ["partner.org", "acme.com"]
    event = AuditEvent.objects.get(organization=acme, action="organization.updated")
    assert event.actor == people["admin"]
    assert event.ip_address == "127.0.0.1"
    assert event.details == {
        "changed": {
            "timezone": {"before": "Europe/London", "after": "America/New_York"},
            "allowed_recipient_domains": {"before": ["acme.com"], "after": ["partner.org", "acme.com"]},
        }
    }


def test_org_patch_records_only_the_fields_that_changed(acme, people):
    client = client_for(people["admin"])
    response = client.patch(
        "/api/v1/orgs/acme/", {"timezone": "Europe/London", "allowed_recipient_domains": []}, format="json"
    )
    assert response.status_code == 200
    event = AuditEvent.objects.get(organization=acme, action="organization.updated")
    assert event.details == {"changed": {"allowed_recipient_domains": {"before": ["acme.com"], "after": []}}}
    assert client.patch("/api/v1/orgs/acme/", {"timezone": "Europe/London"}, format="json").status_code == 200
    assert AuditEvent.objects.filter(organization=acme, action="organization.updated").count() == 1


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone", "is not an IANA time zone"),
        ({"timezone": ""}, "timezone", "may not be blank"),
        ({"allowed_recipient_domains": ["not a domain"]}, "allowed_recipient_domains", "'not a domain' is not a"),
        ({"allowed_recipient_domains": ["acme.com", "localhost"]}, "allowed_recipient_domains", "'localhost'"),
        ({"allowed_recipient_domains": ["bob@acme.com"]}, "allowed_recipient_domains", "is not a domain name"),
        ({"allowed_recipient_domains": "acme.com"}, "allowed_recipient_domains", "Expected a list"),
        ({"allowed_recipient_domains": [""]}, "allowed_recipient_domains", "may not be blank"),
        ({"allowed_recipient_domains": None}, "allowed_recipient_domains", "may not be null"),
        ({"delivery_policy": "encrypted"}, "delivery_policy", '"encrypted" is not a valid choice.'),
        ({"delivery_policy": ""}, "delivery_policy", '"" is not a valid choice.'),
        ({"delivery_policy": None}, "delivery_policy", "may not be null"),
        ({"delivery_policy": ["protected"]}, "delivery_policy", "is not a valid choice"),
        ({"link_access": "members"}, "link_access", '"members" is not a valid choice.'),
        ({"link_access": "MEMBERS_ONLY"}, "link_access", '"MEMBERS_ONLY" is not a valid choice.'),
        ({"link_access": None}, "link_access", "may not be null"),
        ({"link_access": "members_only", "delivery_policy": "nope"}, "delivery_policy", "is not a valid choice"),
        (
            {"timezone": "Europe/Paris", "pseudonym_key": "00"},
            "pseudonym_key",
            "Unknown field: use timezone, allowed_recipient_domains, delivery_policy, link_access",
        ),
        ({"timezone": "Europe/Paris", "name": "Evil"}, "name", "This field is read-only."),
        ({"timezone": "Europe/Paris", "slug": "evil"}, "slug", "This field is read-only."),
    ],
)
def test_org_patch_invalid_is_400_naming_the_field_and_changes_nothing(acme, people, body, field, message):
    before = state(acme)
    response = client_for(people["admin"]).patch("/api/v1/orgs/acme/", body, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field]
    assert message in str(errors[field]), errors
    assert state(acme) == before
    assert acme.name == "Acme" and acme.slug == "acme"


def test_org_patch_changes_delivery_policy_and_link_access_and_audits(acme, people):
    client = client_for(people["admin"])
    response = client.patch(
        "/api/v1/orgs/acme/", {"delivery_policy": "protected", "link_access": "members_only"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["delivery_policy"], body["link_access"]) == ("protected", "members_only")
    assert client.get("/api/v1/orgs/acme/").json() == body
    acme.refresh_from_db()
    assert (acme.delivery_policy, acme.link_access) == ("protected", "members_only")
    assert (acme.timezone, acme.allowed_recipient_domains) == ("Europe/London", ["acme.com"])
    event = AuditEvent.objects.get(organization=acme, action="organization.updated")
    assert event.actor == people["admin"]
    assert event.details == {
        "changed": {
            "delivery_policy": {"before": "any", "after": "protected"},
            "link_access": {"before": "anyone_with_link", "after": "members_only"},
        }
    }
    # Back to the defaults, one field at a time: each change is its own event.
    assert client.patch("/api/v1/orgs/acme/", {"link_access": "anyone_with_link"}, format="json").status_code == 200
    acme.refresh_from_db()
    assert (acme.delivery_policy, acme.link_access) == ("protected", "anyone_with_link")
    latest = AuditEvent.objects.filter(organization=acme, action="organization.updated").order_by("sequence").last()
    assert latest.details == {"changed": {"link_access": {"before": "members_only", "after": "anyone_with_link"}}}


def test_organization_update_service_refuses_unknown_choices_naming_the_field(acme):
    for field in ("delivery_policy", "link_access"):
        with pytest.raises(ApplicationError) as caught:
            organization_update(organization=acme, data={field: "sometimes"})
        assert caught.value.field == field
        assert "'sometimes' is not one of" in caught.value.message
    acme.refresh_from_db()
    assert (acme.delivery_policy, acme.link_access) == ("any", "anyone_with_link")
    assert not AuditEvent.objects.filter(action="organization.updated").exists()


def test_org_patch_non_object_body_is_400(acme, people):
    response = client_for(people["admin"]).patch("/api/v1/orgs/acme/", ["Europe/Paris"], format="json")
    assert response.status_code == 400


# --- GET /orgs/{org}/members/ ------------------------------------------------------------------


def test_members_lists_the_organizations_members_paginated(acme, people):
    Membership.objects.filter(user__username="oscar").update(identity_access=True)
    response = client_for(people["admin"]).get("/api/v1/orgs/acme/members/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and body["next"] is None and body["previous"] is None
    assert body["results"] == [
        {"username": "alice", "email": "alice@example.com", "role": "admin", "identity_access": False},
        {"username": "oscar", "email": "oscar@example.com", "role": "officer", "identity_access": True},
        {"username": "vera", "email": "vera@example.com", "role": "viewer", "identity_access": False},
    ]


def test_members_pages_with_page_size(acme, people):
    body = client_for(people["admin"]).get("/api/v1/orgs/acme/members/?page_size=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]


# --- PATCH /orgs/{org}/members/{username}/ --------------------------------------------------------


def test_member_patch_changes_role_and_identity_access_and_audits(acme, people):
    response = client_for(people["admin"]).patch(
        "/api/v1/orgs/acme/members/vera/", {"role": "officer", "identity_access": True}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {
        "username": "vera",
        "email": "vera@example.com",
        "role": "officer",
        "identity_access": True,
    }
    membership = Membership.objects.get(organization=acme, user__username="vera")
    assert (membership.role, membership.identity_access) == ("officer", True)
    event = AuditEvent.objects.get(organization=acme, action="membership.updated")
    assert event.actor == people["admin"]
    assert event.target_id == str(membership.pk)
    assert event.details == {
        "username": "vera",
        "changed": {
            "role": {"before": "viewer", "after": "officer"},
            "identity_access": {"before": False, "after": True},
        },
    }


def test_member_patch_of_one_field_leaves_the_other(acme, people):
    response = client_for(people["admin"]).patch(
        "/api/v1/orgs/acme/members/oscar/", {"identity_access": True}, format="json"
    )
    assert response.json()["role"] == "officer"
    event = AuditEvent.objects.get(organization=acme, action="membership.updated")
    assert event.details == {"username": "oscar", "changed": {"identity_access": {"before": False, "after": True}}}


def test_member_patch_without_a_change_is_not_audited(acme, people):
    response = client_for(people["admin"]).patch("/api/v1/orgs/acme/members/oscar/", {"role": "officer"}, format="json")
    assert response.status_code == 200
    assert not AuditEvent.objects.filter(action="membership.updated").exists()


@pytest.mark.parametrize("username", ["gus", "nobody"])
def test_member_patch_of_a_non_member_is_404(acme, people, username):
    before = state(acme)
    response = client_for(people["admin"]).patch(
        f"/api/v1/orgs/acme/members/{username}/", {"role": "viewer"}, format="json"
    )
    assert response.status_code == 404
    assert state(acme) == before
    assert Membership.objects.get(user__username="gus").role == Role.ADMIN


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"role": "boss"}, "role", '"boss" is not a valid choice.'),
        ({"role": None}, "role", "may not be null"),
        ({"identity_access": "yes"}, "identity_access", "Must be a valid boolean."),
        ({"identity_access": 1}, "identity_access", "Must be a valid boolean."),
        ({"identity_access": None}, "identity_access", "may not be null"),
        ({"role": "viewer", "email": "x@evil.com"}, "email", "This field is read-only."),
        ({"role": "viewer", "is_superuser": True}, "is_superuser", "Unknown field: use role, identity_access"),
    ],
)
def test_member_patch_invalid_is_400_naming_the_field_and_changes_nothing(acme, people, body, field, message):
    before = state(acme)
    response = client_for(people["admin"]).patch("/api/v1/orgs/acme/members/oscar/", body, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field]
    assert message in str(errors[field]), errors
    assert state(acme) == before


def test_member_patch_refuses_to_demote_the_last_admin(acme, people):
    before = state(acme)
    client = client_for(people["admin"])
    response = client.patch("/api/v1/orgs/acme/members/alice/", {"role": "officer"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"role": ["alice is the last admin of Acme: make another member admin first."]}
    assert state(acme) == before
    # With a second admin, the first may step down (and then no longer administers members).
    assert client.patch("/api/v1/orgs/acme/members/oscar/", {"role": "admin"}, format="json").status_code == 200
    response = client.patch("/api/v1/orgs/acme/members/alice/", {"role": "viewer"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "viewer"
    assert client.get("/api/v1/orgs/acme/members/").status_code == 403


def test_member_patch_last_admin_may_change_identity_access_of_themselves(acme, people):
    response = client_for(people["admin"]).patch(
        "/api/v1/orgs/acme/members/alice/", {"role": "admin", "identity_access": True}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["identity_access"] is True


def test_member_patch_by_a_superuser_who_is_not_a_member(acme, people):
    root = UserFactory(username="root", is_superuser=True)
    response = client_for(root).patch("/api/v1/orgs/acme/members/vera/", {"identity_access": True}, format="json")
    assert response.status_code == 200
    assert AuditEvent.objects.get(action="membership.updated").actor == root


# --- POST /orgs/{org}/pseudonym-key/rotate/ ---------------------------------------------------------


def test_rotate_replaces_the_key_returns_204_and_audits_without_the_key(acme, people):
    old_key = bytes(acme.pseudonym_key)
    response = client_for(people["admin"]).post("/api/v1/orgs/acme/pseudonym-key/rotate/")
    assert response.status_code == 204
    assert response.content == b""
    acme.refresh_from_db()
    new_key = bytes(acme.pseudonym_key)
    assert len(new_key) == 32 and new_key != old_key
    assert pseudonym(key=new_key, column="reporter_name", value="Jane Roe") != pseudonym(
        key=old_key, column="reporter_name", value="Jane Roe"
    )
    event = AuditEvent.objects.get(organization=acme, action="organization.pseudonym_key_rotated")
    assert event.actor == people["admin"]
    assert event.target_id == str(acme.pk)
    stored = canonical_json(event)
    for key in (old_key, new_key):
        for text in (key.hex(), base64.b64encode(key).decode(), key.decode("latin-1")):
            assert text not in stored
    assert "key" not in json.dumps(event.details)


def test_rotate_leaves_other_organizations_keys_alone(acme, people):
    globex = Organization.objects.get(slug="globex")
    globex_key = bytes(globex.pseudonym_key)
    client_for(people["admin"]).post("/api/v1/orgs/acme/pseudonym-key/rotate/")
    globex.refresh_from_db()
    assert bytes(globex.pseudonym_key) == globex_key


def test_no_response_shows_the_key(acme, people):
    client = client_for(people["admin"])
    key = bytes(acme.pseudonym_key).hex()
    for path in ("/api/v1/orgs/acme/", "/api/v1/orgs/", "/api/v1/orgs/acme/members/", "/api/v1/orgs/acme/audit/"):
        response = client.get(path)
        assert response.status_code == 200
        assert key not in response.content.decode() and 'pseudonym_key"' not in response.content.decode()


# --- the schema documents the bodies ------------------------------------------------------------


def test_schema_documents_the_new_endpoints_and_bodies():
    schema = APIClient().get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert "patch" in paths["/api/v1/orgs/{org}/"]
    assert "get" in paths["/api/v1/orgs/{org}/members/"]
    assert "patch" in paths["/api/v1/orgs/{org}/members/{username}/"]
    assert "204" in paths["/api/v1/orgs/{org}/pseudonym-key/rotate/"]["post"]["responses"]
    components = schema["components"]["schemas"]
    assert set(components["PatchedOrganizationUpdateRequest"]["properties"]) == {
        "timezone",
        "allowed_recipient_domains",
        "delivery_policy",
        "link_access",
    }
    assert set(components["PatchedMemberUpdateRequest"]["properties"]) == {"role", "identity_access"}
    assert set(components["Member"]["properties"]) == {"username", "email", "role", "identity_access"}
    detail = components["OrganizationDetail"]["properties"]
    assert {"allowed_recipient_domains", "delivery_policy", "link_access"} <= set(detail)


def test_members_of_another_org_are_not_listed(acme, people):
    MembershipFactory(organization=Organization.objects.get(slug="globex"), user=UserFactory(username="gina"))
    names = [m["username"] for m in client_for(people["admin"]).get("/api/v1/orgs/acme/members/").json()["results"]]
    assert names == ["alice", "oscar", "vera"]
