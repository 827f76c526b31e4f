"""Memberships and organizations in the admin: identity access and the pseudonym key."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditEvent
from organizations.admin import ROTATE_WARNING
from organizations.models import Membership, Organization, Role
from organizations.tests.factories import MembershipFactory, OrganizationFactory, member

pytestmark = pytest.mark.django_db

MEMBERSHIPS = "/admin/organizations/membership/"
ORGANIZATIONS = "/admin/organizations/organization/"


@pytest.fixture
def setup():
    acme = OrganizationFactory(slug="acme", name="Acme")
    globex = OrganizationFactory(slug="globex", name="Globex")
    admin = member(acme, Role.ADMIN, "alice")
    MembershipFactory(user=admin, organization=globex, role=Role.OFFICER)
    member(acme, Role.OFFICER, "oscar")
    member(globex, Role.ADMIN, "gus")
    client = Client()
    client.force_login(admin)
    return acme, globex, client


def login(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


def membership(org: Organization, username: str) -> Membership:
    return Membership.objects.get(organization=org, user__username=username)


# --- memberships ----------------------------------------------------------------------------------


def test_membership_list_shows_identity_access_column_and_filter(setup):
    acme, globex, client = setup
    html = client.get(MEMBERSHIPS).content.decode()
    assert "column-identity_access" in html
    assert "identity_access__exact=1" in html
    assert client.get(MEMBERSHIPS + "?identity_access__exact=1").status_code == 200


def test_admin_toggles_identity_access_and_it_is_audited(setup):
    acme, globex, client = setup
    oscar = membership(acme, "oscar")
    response = client.post(f"{MEMBERSHIPS}{oscar.pk}/change/", {"role": "officer", "identity_access": "on"})
    assert response.status_code == 302
    oscar.refresh_from_db()
    assert oscar.identity_access is True
    event = AuditEvent.objects.get(organization=acme, action="membership.updated")
    assert event.actor.username == "alice"
    assert event.details == {"username": "oscar", "changed": {"identity_access": {"before": False, "after": True}}}

    client.post(f"{MEMBERSHIPS}{oscar.pk}/change/", {"role": "officer"})
    oscar.refresh_from_db()
    assert oscar.identity_access is False
    assert AuditEvent.objects.filter(organization=acme, action="membership.updated").count() == 2


def test_officer_cannot_change_identity_access(setup):
    acme, globex, _ = setup
    oscar = membership(acme, "oscar")
    response = login("oscar").post(f"{MEMBERSHIPS}{oscar.pk}/change/", {"role": "officer", "identity_access": "on"})
    assert response.status_code == 403
    oscar.refresh_from_db()
    assert oscar.identity_access is False
    assert not AuditEvent.objects.filter(action="membership.updated").exists()


def test_admin_of_one_org_cannot_change_members_of_another(setup):
    acme, globex, client = setup
    gus = membership(globex, "gus")
    client.post(f"{MEMBERSHIPS}{gus.pk}/change/", {"role": "viewer", "identity_access": "on"})
    gus.refresh_from_db()
    assert (gus.role, gus.identity_access) == (Role.ADMIN, False)
    assert not AuditEvent.objects.filter(action="membership.updated").exists()


def test_admin_form_refuses_to_demote_the_last_admin(setup):
    acme, globex, client = setup
    alice = membership(acme, "alice")
    response = client.post(f"{MEMBERSHIPS}{alice.pk}/change/", {"role": "viewer"})
    assert response.status_code == 200
    assert "alice is the last admin of Acme: make another member admin first." in response.content.decode()
    alice.refresh_from_db()
    assert alice.role == Role.ADMIN
    assert not AuditEvent.objects.filter(action="membership.updated").exists()


def test_admin_cannot_delete_the_last_admin(setup):
    acme, globex, client = setup
    alice = membership(acme, "alice")
    page = client.get(f"{MEMBERSHIPS}{alice.pk}/delete/").content.decode()
    assert "The last admin of Acme: make another member admin first." in page
    client.post(f"{MEMBERSHIPS}{alice.pk}/delete/", {"post": "yes"})
    assert Membership.objects.filter(pk=alice.pk).exists()
    oscar = membership(acme, "oscar")
    client.post(MEMBERSHIPS, {"action": "delete_selected", "_selected_action": [alice.pk, oscar.pk], "post": "yes"})
    assert Membership.objects.filter(organization=acme).count() == 2


def test_admin_may_delete_a_non_last_admin(setup):
    acme, globex, client = setup
    oscar = membership(acme, "oscar")
    client.post(f"{MEMBERSHIPS}{oscar.pk}/delete/", {"post": "yes"})
    assert not Membership.objects.filter(pk=oscar.pk).exists()


# --- organizations and the pseudonym key -------------------------------------------------------


def test_organization_pages_never_show_the_pseudonym_key(setup):
    acme, globex, client = setup
    key = bytes(acme.pseudonym_key).hex()
    for url in (ORGANIZATIONS, f"{ORGANIZATIONS}{acme.pk}/change/", f"{ORGANIZATIONS}{globex.pk}/change/"):
        html = client.get(url).content.decode()
        assert key not in html
        assert 'name="pseudonym_key"' not in html and "field-pseudonym_key" not in html


def test_rotate_action_asks_first_then_rotates_and_audits(setup):
    acme, globex, client = setup
    old_key = bytes(acme.pseudonym_key)
    confirm = client.post(ORGANIZATIONS, {"action": "rotate_pseudonym_key", "_selected_action": [acme.pk]})
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "Pseudonyms in new exports will differ from those in files exported earlier" in page
    assert 'name="confirm" value="yes"' in page
    acme.refresh_from_db()
    assert bytes(acme.pseudonym_key) == old_key

    response = client.post(
        ORGANIZATIONS, {"action": "rotate_pseudonym_key", "_selected_action": [acme.pk], "confirm": "yes"}, follow=True
    )
    assert response.status_code == 200
    assert ROTATE_WARNING in response.content.decode()
    acme.refresh_from_db()
    assert bytes(acme.pseudonym_key) != old_key and len(bytes(acme.pseudonym_key)) == 32
    event = AuditEvent.objects.get(organization=acme, action="organization.pseudonym_key_rotated")
    assert event.actor.username == "alice"
    assert old_key.hex() not in json.dumps(event.details) and bytes(acme.pseudonym_key).hex() not in json.dumps(
        event.details
    )


def test_rotate_action_needs_the_admin_role_in_that_organization(setup):
    acme, globex, client = setup
    globex_key = bytes(globex.pseudonym_key)
    response = client.post(
        ORGANIZATIONS,
        {"action": "rotate_pseudonym_key", "_selected_action": [globex.pk], "confirm": "yes"},
        follow=True,
    )
    assert "Globex: rotating the pseudonym key needs the admin role." in response.content.decode()
    globex.refresh_from_db()
    assert bytes(globex.pseudonym_key) == globex_key
    assert not AuditEvent.objects.filter(action="organization.pseudonym_key_rotated").exists()


def test_rotate_action_is_not_offered_to_officers(setup):
    acme, globex, _ = setup
    key = bytes(acme.pseudonym_key)
    client = login("oscar")
    assert "rotate_pseudonym_key" not in client.get(ORGANIZATIONS).content.decode()
    client.post(ORGANIZATIONS, {"action": "rotate_pseudonym_key", "_selected_action": [acme.pk], "confirm": "yes"})
    acme.refresh_from_db()
    assert bytes(acme.pseudonym_key) == key


def _org_form(org: Organization, **overrides: str) -> dict[str, str]:
    data = {
        "name": org.name,
        "slug": org.slug,
        "timezone": org.timezone,
        "allowed_recipient_domains": json.dumps(org.allowed_recipient_domains),
        "delivery_policy": org.delivery_policy,
        "link_access": org.link_access,
    }
    data.update(overrides)
    return data


def test_organization_settings_saved_in_the_admin_are_validated_and_audited(setup):
    acme, globex, client = setup
    key = bytes(acme.pseudonym_key)
    response = client.post(
        f"{ORGANIZATIONS}{acme.pk}/change/",
        _org_form(acme, name="Acme Ltd", timezone="Europe/Paris", allowed_recipient_domains='["@ACME.com"]'),
    )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.name, acme.timezone, acme.allowed_recipient_domains) == ("Acme Ltd", "Europe/Paris", ["acme.com"])
    assert bytes(acme.pseudonym_key) == key
    event = AuditEvent.objects.get(organization=acme, action="organization.updated")
    assert event.details["changed"]["timezone"] == {"before": "Europe/London", "after": "Europe/Paris"}

    response = client.post(
        f"{ORGANIZATIONS}{acme.pk}/change/", _org_form(acme, allowed_recipient_domains='["not a domain"]')
    )
    assert response.status_code == 200
    assert "is not a domain name such as acme.com" in response.content.decode().replace("&#x27;", "'")
    acme.refresh_from_db()
    assert acme.allowed_recipient_domains == ["acme.com"]


def test_admin_shows_and_explains_delivery_policy_and_link_access(setup):
    acme, globex, client = setup
    html = client.get(f"{ORGANIZATIONS}{acme.pk}/change/").content.decode().replace("&#x27;", "'")
    for name, value in [("delivery_policy", "protected"), ("link_access", "members_only")]:
        assert f'name="{name}" value="{value}"' in html
    assert "a schedule that would attach a plain file is refused" in html
    assert "the link asks for a sign-in and serves the file only to members of this organization" in html
    listing = client.get(ORGANIZATIONS).content.decode()
    assert "column-delivery_policy" in listing and "column-link_access" in listing
    assert "link_access__exact=members_only" in listing


def test_admin_changes_delivery_policy_and_link_access_through_the_service(setup):
    acme, globex, client = setup
    key = bytes(acme.pseudonym_key)
    response = client.post(
        f"{ORGANIZATIONS}{acme.pk}/change/", _org_form(acme, delivery_policy="protected", link_access="members_only")
    )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.delivery_policy, acme.link_access) == ("protected", "members_only")
    assert bytes(acme.pseudonym_key) == key
    event = AuditEvent.objects.get(organization=acme, action="organization.updated")
    assert event.actor.username == "alice"
    assert event.details == {
        "changed": {
            "delivery_policy": {"before": "any", "after": "protected"},
            "link_access": {"before": "anyone_with_link", "after": "members_only"},
        }
    }

    response = client.post(f"{ORGANIZATIONS}{acme.pk}/change/", _org_form(acme, link_access="everyone"))
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    acme.refresh_from_db()
    assert acme.link_access == "members_only"
    assert AuditEvent.objects.filter(organization=acme, action="organization.updated").count() == 1


def test_officer_cannot_change_link_access_in_the_admin(setup):
    acme, globex, _ = setup
    response = login("oscar").post(f"{ORGANIZATIONS}{acme.pk}/change/", _org_form(acme, link_access="members_only"))
    assert response.status_code == 403
    acme.refresh_from_db()
    assert acme.link_access == "anyone_with_link"
    assert not AuditEvent.objects.filter(action="organization.updated").exists()


def test_superuser_adds_a_membership_with_identity_access_audited(setup):
    acme, globex, _ = setup
    root = User.objects.create_superuser("root", "root@example.com", "pw")
    newcomer = User.objects.create_user("nina")
    client = Client()
    client.force_login(root)
    response = client.post(
        f"{MEMBERSHIPS}add/",
        {"user": newcomer.pk, "organization": acme.pk, "role": "viewer", "identity_access": "on"},
    )
    assert response.status_code == 302
    nina = membership(acme, "nina")
    assert (nina.role, nina.identity_access) == (Role.VIEWER, True)
    actions = list(AuditEvent.objects.filter(organization=acme).order_by("sequence").values_list("action", flat=True))
    assert actions == ["membership.created", "membership.updated"]
