"""Org B's rows never show in org A's admin: lists, filters, forms, detail pages."""

from __future__ import annotations

import pytest
from django.test import Client

from cases.tests.factories import CaseFactory, InvestigationFactory
from organizations.models import Role
from organizations.tests.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_orgs():
    a = OrganizationFactory(name="Alpha Ltd", slug="alpha")
    b = OrganizationFactory(name="Bravo GmbH", slug="bravo")
    case_a = CaseFactory(organization=a, reference="CASE-A-1", business_unit="AlphaUnit")
    case_b = CaseFactory(organization=b, reference="CASE-B-1", business_unit="BravoUnit")
    InvestigationFactory(case=case_a, investigator="Ann Alpha")
    InvestigationFactory(case=case_b, investigator="Bob Bravo")
    return a, b, case_a, case_b


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/cases/case/",
        "/admin/cases/investigation/",
        "/admin/cases/riu/",
        "/admin/organizations/membership/",
        "/admin/organizations/organization/",
    ],
)
def test_changelists_show_only_own_organization(two_orgs, url):
    a, b, case_a, case_b = two_orgs
    client = logged_in(member(a, Role.ADMIN, username="alice"))
    member(b, Role.ADMIN, username="bruno")
    html = client.get(url).content.decode()
    assert "Bravo" not in html and "CASE-B-1" not in html and "bruno" not in html


def test_case_list_filters_and_form_choices_are_scoped(two_orgs):
    from organizations.tests.factories import MembershipFactory

    a, b, case_a, case_b = two_orgs
    c = OrganizationFactory(name="Charlie Inc", slug="charlie")
    CaseFactory(organization=c, reference="CASE-C-1")
    user = member(a, Role.OFFICER)
    MembershipFactory(user=user, organization=c, role=Role.VIEWER)
    client = logged_in(user)
    changelist = client.get("/admin/cases/case/").content.decode()
    assert "CASE-A-1" in changelist and "CASE-C-1" in changelist
    assert f"?organization__id__exact={a.pk}" in changelist  # the organization filter lists A and C only
    assert f"?organization__id__exact={c.pk}" in changelist
    assert f"?organization__id__exact={b.pk}" not in changelist
    assert "Bravo" not in changelist
    add_form = client.get("/admin/cases/case/add/").content.decode()
    # officer in A, viewer in C: a new case can only go to A
    choices = add_form.split('id="id_organization"', 1)[1].split("</select>", 1)[0]  # not the header's switch
    assert "Alpha Ltd" in choices and "Bravo GmbH" not in add_form and "Charlie Inc" not in choices
    assert client.get(f"/admin/cases/case/{case_b.pk}/change/").status_code == 404  # not in their organizations
    assert client.get(f"/admin/cases/case/{case_a.pk}/change/").status_code == 200


def test_investigation_form_rejects_another_organizations_case(two_orgs):
    a, b, case_a, case_b = two_orgs
    client = logged_in(member(a, Role.OFFICER))
    response = client.post(
        "/admin/cases/investigation/add/",
        {
            "organization": a.pk,
            "case": case_b.pk,
            "number": 9,
            "status": "open",
            "allegation_type": "x",
            "opened_at_0": "2026-01-01",
            "opened_at_1": "10:00",
            "custom_fields": "{}",
        },
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not case_b.investigations.filter(number=9).exists()


def test_viewer_can_view_but_not_change(two_orgs):
    a, _, case_a, _ = two_orgs
    client = logged_in(member(a, Role.VIEWER))
    assert client.get("/admin/cases/case/").status_code == 200
    assert client.get("/admin/cases/case/add/").status_code == 403
    page = client.get(f"/admin/cases/case/{case_a.pk}/change/").content.decode()
    assert 'name="_save"' not in page


def test_staff_without_membership_sees_no_dossier_apps(two_orgs):
    from organizations.tests.factories import UserFactory

    client = logged_in(UserFactory(username="loner"))
    index = client.get("/admin/").content.decode()
    assert "/admin/cases/case/" not in index
    assert client.get("/admin/cases/case/").status_code == 403


def test_audit_admin_is_read_only_and_scoped(two_orgs):
    from audit.services import audit_record

    a, b, *_ = two_orgs
    audit_record(organization_id=a.pk, action="alpha.thing")
    audit_record(organization_id=b.pk, action="bravo.thing")
    client = logged_in(member(a, Role.ADMIN))
    html = client.get("/admin/audit/auditevent/").content.decode()
    assert "alpha.thing" in html and "bravo.thing" not in html
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
