from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from organizations.models import Role
from organizations.tests.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_health_reports_database_and_broker_ok_without_auth():
    response = APIClient().get("/api/v1/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_orgs_lists_only_the_callers_organizations_with_role():
    a, b = OrganizationFactory(slug="alpha"), OrganizationFactory(slug="beta")
    OrganizationFactory(slug="gamma")
    user = member(a, Role.ADMIN)
    from organizations.tests.factories import MembershipFactory

    MembershipFactory(user=user, organization=b, role=Role.VIEWER)
    body = client_for(user).get("/api/v1/orgs/").json()
    assert body["count"] == 2
    assert {(o["slug"], o["role"]) for o in body["results"]} == {("alpha", "admin"), ("beta", "viewer")}


def test_orgs_needs_authentication():
    assert APIClient().get("/api/v1/orgs/").status_code in (401, 403)


@pytest.mark.parametrize("path", ["", "audit/"])
def test_other_organization_is_404_for_a_member_of_another(path):
    a, b = OrganizationFactory(slug="alpha"), OrganizationFactory(slug="beta")
    user = member(a, Role.ADMIN)
    client = client_for(user)
    assert client.get(f"/api/v1/orgs/alpha/{path}").status_code == 200
    assert client.get(f"/api/v1/orgs/beta/{path}").status_code == 404
    assert client.get(f"/api/v1/orgs/nope/{path}").status_code == 404


def test_role_too_low_is_403():
    org = OrganizationFactory(slug="alpha")
    response = client_for(member(org, Role.OFFICER)).get("/api/v1/orgs/alpha/audit/")
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]


def test_token_auth_works(db):
    from rest_framework.authtoken.models import Token

    org = OrganizationFactory(slug="alpha")
    user = member(org, Role.VIEWER)
    token = Token.objects.create(user=user)
    response = APIClient().get("/api/v1/orgs/alpha/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.json() == {
        "slug": "alpha",
        "name": org.name,
        "timezone": "Europe/London",
        "allowed_recipient_domains": [],
        "delivery_policy": "any",
        "link_access": "anyone_with_link",
        "role": "viewer",
    }


def test_schema_and_docs_are_served():
    schema = APIClient().get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/orgs/{org}/" in schema.content
    assert APIClient().get("/api/docs/").status_code == 200


def test_health_is_503_and_says_which_part_failed_when_the_broker_is_down(monkeypatch):
    class DeadBroker:
        def ping(self):
            raise ConnectionError("broker unreachable")

    monkeypatch.setattr("django_q.brokers.get_broker", lambda: DeadBroker())
    response = APIClient().get("/api/v1/health/")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "ok", "broker": "error"}
