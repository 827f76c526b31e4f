"""The people in a case, in the case admin: names for members with identity access,
pseudonyms for everyone else, and no way around that through a forged POST or a search."""

from __future__ import annotations

import re
from html import escape
from html.parser import HTMLParser

import pytest
from django.test import Client

from cases.models import Party
from cases.tests.factories import CaseFactory, PartyFactory
from organizations.models import Membership, Role
from organizations.pseudonyms import PATTERN, pseudonym
from organizations.tests.factories import MembershipFactory, OrganizationFactory, UserFactory, member

pytestmark = pytest.mark.django_db

REPORTER = {"full_name": "Zoë Ångström", "email": "zoe.angstrom@alpha.example.com", "phone": "+447700900123"}
SUBJECT = {"full_name": "José Núñez", "email": "jose.nunez@alpha.example.com", "employee_id": "E10423"}
WITNESS = {"full_name": "Siobhán O'Brien", "email": "siobhan.obrien@alpha.example.com", "phone": "+13125550142"}
SECRETS = [
    REPORTER["full_name"],
    REPORTER["email"],
    REPORTER["phone"],
    SUBJECT["full_name"],
    SUBJECT["email"],
    SUBJECT["employee_id"],
    WITNESS["full_name"],
    WITNESS["email"],
    WITNESS["phone"],
]


@pytest.fixture
def org():
    return OrganizationFactory(name="Alpha Ltd", slug="alpha")


@pytest.fixture
def case(org):
    case = CaseFactory(organization=org, reference="CASE-A-1", title="Expense fraud in Retail")
    PartyFactory(case=case, reporter=True, employee_id="E20001", job_title="Store manager", **REPORTER)
    PartyFactory(case=case, job_title="Finance manager", phone="+49151000000", **SUBJECT)
    PartyFactory(case=case, witness=True, employee_id="E20003", job_title="Delivery driver", **WITNESS)
    return case


def cleared(org, role=Role.OFFICER, username=None):
    user = member(org, role, username=username)
    Membership.objects.filter(user=user, organization=org).update(identity_access=True)
    return user


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def shows(text: str, html: str) -> bool:
    return text in html or escape(text) in html


def change_page(user, case) -> str:
    response = logged_in(user).get(f"/admin/cases/case/{case.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


class _CaseForm(HTMLParser):
    """What a browser would submit from the case change form."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._inside = False
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == "case_form":
            self._inside = True
        if not self._inside:
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("submit", "button", "reset", "file", "image"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.data.setdefault(a["name"], []).append(a.get("value") or ("on" if kind == "checkbox" else ""))
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self.data.setdefault(self._select, []).append(a.get("value", ""))
        elif tag == "textarea":
            self._textarea = a.get("name")
            self.data[self._textarea] = [""]

    def handle_endtag(self, tag):
        if tag == "form":
            self._inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.data[self._textarea][0] = self.data[self._textarea][0].removeprefix("\n")
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea][0] += data


def forged_post(client: Client, case, parties: list[Party]) -> tuple[int, dict[str, list[str]]]:
    """Submit the case form as the page was served, plus hand-written edits to every party,
    a deletion and a new party, and a new case title."""
    url = f"/admin/cases/case/{case.pk}/change/"
    form = _CaseForm()
    form.feed(client.get(url).content.decode())
    data = form.data
    assert data["parties-TOTAL_FORMS"] == [str(len(parties))]
    data["title"] = ["Expense fraud in Retail (reviewed)"]
    for index, party in enumerate(parties):
        assert data[f"parties-{index}-id"] == [str(party.pk)]
        data[f"parties-{index}-role"] = [party.role]
        data[f"parties-{index}-full_name"] = [f"Forged Name {index}"]
        data[f"parties-{index}-email"] = [f"forged{index}@evil.example.org"]
        data[f"parties-{index}-phone"] = [party.phone]
        data[f"parties-{index}-employee_id"] = [party.employee_id]
        data[f"parties-{index}-job_title"] = [party.job_title]
    data["parties-2-DELETE"] = ["on"]
    new = len(parties)
    data["parties-TOTAL_FORMS"] = [str(new + 1)]
    data[f"parties-{new}-role"] = ["witness"]
    data[f"parties-{new}-full_name"] = ["Injected Person"]
    data[f"parties-{new}-case"] = [str(case.pk)]
    data["_save"] = ["Save"]
    return client.post(url, data).status_code, data


def test_case_page_shows_parties_to_a_member_with_identity_access(case):
    html = change_page(cleared(case.organization), case)
    for secret in SECRETS:
        assert shows(secret, html), secret
    assert 'name="parties-0-full_name"' in html  # an officer with access may edit them
    assert "PSN-" not in html


def test_case_page_shows_pseudonyms_without_identity_access(case):
    html = change_page(member(case.organization, Role.OFFICER), case)
    for secret in [*SECRETS, "Ångström", "Núñez", "O'Brien"]:
        assert not shows(secret, html), secret
    key = bytes(case.organization.pseudonym_key)
    expected = {
        pseudonym(key=key, column="reporter_name", value=REPORTER["full_name"]),
        pseudonym(key=key, column="reporter_email", value=REPORTER["email"]),
        pseudonym(key=key, column="reporter_phone", value=REPORTER["phone"]),
        pseudonym(key=key, column="subject_names", value=SUBJECT["full_name"]),
        pseudonym(key=key, column="subject_employee_ids", value=SUBJECT["employee_id"]),
        pseudonym(key=key, column="witness_names", value=WITNESS["full_name"]),
    }
    shown = set(re.findall(r"PSN-\w+", html))
    assert shown == expected
    assert all(re.fullmatch(PATTERN, value) for value in shown)
    # Fields without an export column of their own are hidden, not given another column's
    # pseudonym; role and job title stay visible; nothing is editable.
    assert html.count("hidden (no identity access)") == 6
    assert "Store manager" in html and "Finance manager" in html and "Delivery driver" in html
    assert "Witness" in html and "Subject" in html
    assert 'name="parties-0-full_name"' not in html and 'name="parties-0-job_title"' not in html


def test_identity_access_in_another_organization_reveals_nothing(case):
    user = member(case.organization, Role.OFFICER)
    MembershipFactory(user=user, organization=OrganizationFactory(slug="bravo"), identity_access=True)
    html = change_page(user, case)
    assert not any(shows(secret, html) for secret in SECRETS)
    assert len(set(re.findall(r"PSN-[0-9a-f]{10}", html))) == 6


def test_viewer_with_identity_access_sees_names_read_only(case):
    html = change_page(cleared(case.organization, Role.VIEWER), case)
    assert shows(REPORTER["full_name"], html) and shows(SUBJECT["employee_id"], html)
    assert 'name="parties-0-full_name"' not in html


def test_superuser_sees_names(case):
    user = UserFactory(username="root")
    user.is_superuser = True
    user.save()
    html = change_page(user, case)
    assert shows(WITNESS["full_name"], html)


def test_member_without_identity_access_cannot_change_parties_by_post(case):
    before = list(Party.objects.filter(case=case).order_by("pk").values())
    client = logged_in(member(case.organization, Role.OFFICER))
    status, data = forged_post(client, case, list(case.parties.order_by("pk")))
    assert status == 302  # the case form itself was accepted…
    case.refresh_from_db()
    assert case.title == "Expense fraud in Retail (reviewed)"
    # …and the people in it were left as they were: no edit, no deletion, no addition.
    assert list(Party.objects.filter(case=case).order_by("pk").values()) == before
    assert not Party.objects.filter(full_name__in=["Injected Person", "Forged Name 0"]).exists()


def test_member_with_identity_access_changes_adds_and_deletes_parties(case):
    parties = list(case.parties.order_by("pk"))
    client = logged_in(cleared(case.organization))
    status, _ = forged_post(client, case, parties)
    assert status == 302
    remaining = {p.pk: p for p in Party.objects.filter(case=case)}
    assert remaining[parties[0].pk].full_name == "Forged Name 0"
    assert remaining[parties[0].pk].email == "forged0@evil.example.org"
    assert parties[2].pk not in remaining
    added = Party.objects.get(case=case, full_name="Injected Person")
    assert added.role == "witness" and added.organization_id == case.organization_id
    assert len(remaining) == 3


def test_party_names_stay_out_of_the_case_list_search_and_str(case):
    client = logged_in(cleared(case.organization))
    listing = client.get("/admin/cases/case/").content.decode()
    assert "CASE-A-1" in listing
    assert not any(shows(secret, listing) for secret in SECRETS)
    found = client.get("/admin/cases/case/", {"q": "CASE-A-1"}).content.decode()
    assert "CASE-A-1" in found
    for query in (REPORTER["full_name"], SUBJECT["email"], SUBJECT["employee_id"]):
        assert "CASE-A-1" not in client.get("/admin/cases/case/", {"q": query}).content.decode()
    for party in case.parties.all():
        assert not any(secret in str(party) for secret in SECRETS)
