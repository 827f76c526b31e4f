"""Signed download links of an organization that serves them to its members only."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from django.test import Client
from rest_framework.test import APIClient

from audit.models import AuditEvent
from exports.downloads import LINK_SALT, download_token, link_requires_sign_in
from exports.models import ExportJob
from exports.services import exports_storage
from exports.tests.factories import org_with_cases
from organizations.models import LinkAccess, Organization, Role
from organizations.tests.factories import OrganizationFactory, UserFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def org() -> Organization:
    return org_with_cases()[0]


@pytest.fixture
def job(org, django_capture_on_commit_callbacks) -> ExportJob:
    """A completed CSV export of ``org``, made through the API like a user would."""
    officer = APIClient()
    officer.force_authenticate(member(org, Role.OFFICER, username="olivia"))
    with django_capture_on_commit_callbacks(execute=True):
        body = officer.post("/api/v1/orgs/acme/exports/", {"format": "csv"}, format="json").json()
    job = ExportJob.objects.get(pk=body["id"])
    assert job.status == "completed" and job.storage_key
    return job


def members_only(org: Organization) -> None:
    org.link_access = LinkAccess.MEMBERS_ONLY
    org.save(update_fields=["link_access"])


def stored_bytes(job: ExportJob) -> bytes:
    with exports_storage().open(job.storage_key, "rb") as handle:
        return handle.read()


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def link_downloads() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="export.downloaded").order_by("sequence"))


def test_link_requires_sign_in_follows_the_setting(org):
    assert link_requires_sign_in(org) is False
    members_only(org)
    assert link_requires_sign_in(org) is True


def test_anyone_with_link_serves_an_anonymous_visitor(job):
    response = Client().get(f"/d/{download_token(job)}/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == stored_bytes(job)
    [event] = link_downloads()
    assert event.details["via"] == "link" and event.actor is None


def test_members_only_redirects_an_anonymous_visitor_to_sign_in_and_serves_nothing(org, job):
    members_only(org)
    path = f"/d/{download_token(job)}/"
    response = Client().get(path)
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/admin/login/"
    assert parse_qs(location.query) == {"next": [path]}
    assert link_downloads() == []


def test_members_only_redirects_to_login_url_when_configured(org, job, settings):
    members_only(org)
    settings.LOGIN_URL = "/sso/login/"
    path = f"/d/{download_token(job)}/"
    location = urlsplit(Client().get(path)["Location"])
    assert (location.path, parse_qs(location.query)) == ("/sso/login/", {"next": [path]})


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OFFICER, Role.ADMIN])
def test_members_only_serves_a_signed_in_member_and_audits(org, job, role):
    members_only(org)
    user = member(org, role, username=f"m-{role}")
    response = signed_in(user).get(f"/d/{download_token(job)}/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{job.file_name}"'
    assert b"".join(response.streaming_content) == stored_bytes(job)
    [event] = link_downloads()
    assert event.actor == user
    assert event.organization_id == org.pk
    assert event.details == {"via": "link", "file_name": job.file_name, "sha256": job.sha256}


def test_members_only_serves_a_superuser_who_is_not_a_member(org, job):
    members_only(org)
    root = UserFactory(username="root", is_superuser=True)
    response = signed_in(root).get(f"/d/{download_token(job)}/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == stored_bytes(job)
    assert [e.actor for e in link_downloads()] == [root]


def test_members_only_is_404_for_a_signed_in_member_of_another_organization(org, job):
    members_only(org)
    outsider = member(OrganizationFactory(slug="globex"), Role.ADMIN, username="gus")
    response = signed_in(outsider).get(f"/d/{download_token(job)}/")
    assert response.status_code == 404
    assert job.file_name not in response.content.decode()
    assert link_downloads() == []


def test_members_only_tampered_token_is_404_without_a_sign_in_redirect(org, job):
    members_only(org)
    token = download_token(job)
    forged = signing.TimestampSigner(salt="something-else").sign_object({"job": str(job.pk), "org": org.pk})
    wrong_org = signing.TimestampSigner(salt=LINK_SALT).sign_object({"job": str(job.pk), "org": org.pk + 1})
    for bad in (f"{token[:-2]}xx", forged, wrong_org):
        response = Client().get(f"/d/{bad}/")
        assert response.status_code == 404
        assert "Location" not in response
    assert link_downloads() == []


def test_members_only_expired_token_is_410_without_a_sign_in_redirect(org, job, monkeypatch):
    members_only(org)
    token = download_token(job)
    later = dt.datetime.now().timestamp() + 8 * 86400
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)
    response = Client().get(f"/d/{token}/")
    assert response.status_code == 410
    assert "Location" not in response
    assert response.json() == {"detail": "This download link has expired."}
    # A member fares no better with an expired link.
    assert signed_in(member(org, Role.ADMIN, username="ada")).get(f"/d/{token}/").status_code == 410
    assert link_downloads() == []


def test_members_only_sign_in_through_the_admin_login_form_returns_to_the_file(org, job):
    members_only(org)
    member(org, Role.VIEWER, username="vera")  # password "pw" (UserFactory)
    path = f"/d/{download_token(job)}/"
    browser = Client()
    login_url = browser.get(path)["Location"]
    page = browser.get(login_url)
    assert page.status_code == 200
    assert 'name="next"' in page.content.decode()

    response = browser.post(login_url, {"username": "vera", "password": "pw", "next": path}, follow=True)
    assert response.redirect_chain == [(path, 302)]
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == stored_bytes(job)
    [event] = link_downloads()
    assert event.actor.username == "vera" and event.details["via"] == "link"


def test_members_only_wrong_password_stays_on_the_login_page(org, job):
    members_only(org)
    member(org, Role.VIEWER, username="vera")
    path = f"/d/{download_token(job)}/"
    browser = Client()
    login_url = browser.get(path)["Location"]
    response = browser.post(login_url, {"username": "vera", "password": "wrong", "next": path})
    assert response.status_code == 200
    assert browser.get(path).status_code == 302
    assert link_downloads() == []
