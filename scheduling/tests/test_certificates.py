"""Recipient certificates: PEM validation (400 on pem, nothing stored), the API with roles and
tenancy, the recipient lookup, the expiry warning, and the admin upload."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core import mail
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from audit.models import AuditEvent
from config.errors import ApplicationError
from organizations.models import Role
from organizations.tests.factories import OrganizationFactory, member
from scheduling.certificates import (
    certificate_add,
    certificate_for_recipient,
    certificate_parse,
    certificates_expiring_notify,
)
from scheduling.models import RecipientCertificate
from scheduling.tasks import tick
from scheduling.tests.certs import make_certificate
from scheduling.tests.factories import make_schedule

pytestmark = pytest.mark.django_db

URL = "/api/v1/orgs/acme/certificates/"
ADMIN_LIST = "/admin/scheduling/recipientcertificate/"
ADMIN_ADD = f"{ADMIN_LIST}add/"


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def days(n: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(days=n)


def der_sha256(pem: str) -> str:
    """The fingerprint as anyone would compute it: SHA-256 of the DER encoding."""
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def any_eku_certificate(email: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "any")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(days(-1))
        .not_valid_after(days(100))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def org():
    return OrganizationFactory(slug="acme", name="Acme")


@pytest.fixture
def other():
    return OrganizationFactory(slug="globex", name="Globex")


@pytest.fixture
def admin_user(org):
    return member(org, Role.ADMIN, username="ada")


@pytest.fixture
def admin(admin_user):
    return api(admin_user)


# --- validation ---------------------------------------------------------------------------------


def _two_certificates() -> str:
    return make_certificate("a@example.com")[0] + make_certificate("b@example.com")[0]


def _damaged() -> str:
    return "-----BEGIN CERTIFICATE-----\nTUlJQm9ndXM=\n-----END CERTIFICATE-----\n"


BAD_PEMS = {
    "garbage": (lambda: "hello, this is my certificate", "not a PEM certificate"),
    "damaged": (_damaged, "cannot be read"),
    "private key": (lambda: make_certificate()[1].decode(), "private key, not a certificate"),
    "several": (_two_certificates, "paste one"),
    "public key": (
        lambda: (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        ),
        "not a PEM certificate",
    ),
    "expired": (lambda: make_certificate(not_before=days(-30), not_after=days(-1))[0], "expired on"),
    "not yet valid": (lambda: make_certificate(not_before=days(2), not_after=days(300))[0], "not valid until"),
    "no email": (lambda: make_certificate(email_in=None)[0], "names no email address"),
    "ec key": (lambda: make_certificate(key="ec")[0], "EC keys cannot be used for S/MIME encryption"),
    "weak rsa": (lambda: make_certificate(bits=1024)[0], "1024 bits"),
    "signing only": (lambda: make_certificate(key_usage=("digital_signature",))[0], "key encipherment"),
    "not for email": (lambda: make_certificate(eku_email=False)[0], "not for email protection"),
}


@pytest.mark.parametrize("case", list(BAD_PEMS))
def test_certificate_post_bad_pem_is_a_400_on_pem_and_stores_nothing(admin, case):
    make_pem, words = BAD_PEMS[case]
    response = admin.post(URL, {"pem": make_pem()}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == ["pem"]
    assert words.lower() in body["pem"][0].lower(), body
    assert not RecipientCertificate.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="certificate.").exists()


def test_certificate_parse_ec_key_asks_for_the_rsa_encryption_certificate():
    with pytest.raises(ApplicationError) as caught:
        certificate_parse(make_certificate(key="ec")[0])
    assert caught.value.field == "pem"
    assert "RSA encryption certificate" in caught.value.message


@pytest.mark.parametrize(
    ("kwargs", "email"),
    [
        ({"email_in": "subject"}, "audit@example.com"),
        ({"key_usage": None, "eku_email": None}, "audit@example.com"),
        ({"key_usage": ("digital_signature", "key_encipherment"), "bits": 3072}, "audit@example.com"),
    ],
)
def test_certificate_parse_accepts_subject_email_and_absent_extensions(kwargs, email):
    parsed = certificate_parse(make_certificate("Audit@Example.COM", **kwargs)[0])
    assert parsed.email == email


def test_certificate_parse_accepts_any_extended_key_usage_and_text_around_the_pem():
    pem = any_eku_certificate("x@example.com")
    parsed = certificate_parse(f"Bag Attributes\n    friendlyName: x\n{pem}\n")
    assert parsed.email == "x@example.com"
    assert parsed.pem == pem and parsed.fingerprint_sha256 == der_sha256(pem)


# --- the API ------------------------------------------------------------------------------------


def test_certificate_post_valid_rsa_is_201_with_email_fingerprint_and_expiry(admin, admin_user, org):
    pem, _key = make_certificate("Audit@Example.com", not_after=days(200))
    response = admin.post(URL, {"pem": pem}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    expected_not_after = x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc
    assert body["email"] == "audit@example.com"
    assert body["fingerprint_sha256"] == der_sha256(pem)
    assert parse_datetime(body["not_after"]) == expected_not_after
    assert body["valid"] is True and body["expires_soon"] is False
    assert "pem" not in body
    stored = RecipientCertificate.objects.get()
    assert (stored.pk, stored.organization, stored.created_by) == (body["id"], org, admin_user)
    assert x509.load_pem_x509_certificate(stored.pem.encode()).fingerprint(hashes.SHA256()).hex() == der_sha256(pem)
    event = AuditEvent.objects.get(action="certificate.added")
    assert event.actor == admin_user and event.organization_id == org.pk
    assert set(event.details) == {"email", "fingerprint_sha256", "not_after"}
    assert event.details["email"] == "audit@example.com"
    assert event.details["fingerprint_sha256"] == der_sha256(pem)
    assert parse_datetime(event.details["not_after"]) == expected_not_after
    assert "BEGIN CERTIFICATE" not in str(event.details)


def test_certificate_post_same_certificate_twice_is_a_400_but_another_org_may_keep_it(admin, org, other):
    pem = make_certificate()[0]
    assert admin.post(URL, {"pem": pem}, format="json").status_code == 201
    again = admin.post(URL, {"pem": pem}, format="json")
    assert again.status_code == 400 and "already on file for audit@example.com" in again.json()["pem"][0]
    assert RecipientCertificate.objects.filter(organization=org).count() == 1
    theirs = api(member(other, Role.ADMIN, username="gina")).post(
        "/api/v1/orgs/globex/certificates/", {"pem": pem}, format="json"
    )
    assert theirs.status_code == 201
    assert RecipientCertificate.objects.count() == 2


def test_certificate_post_without_pem_is_a_400_on_pem(admin):
    for body in ({}, {"pem": ""}, {"pem": "x" * 70_000}):
        response = admin.post(URL, body, format="json")
        assert response.status_code == 400 and "pem" in response.json()
    assert not RecipientCertificate.objects.exists()


def test_certificate_list_is_paginated_and_flags_those_expiring_soon(admin, org, admin_user):
    certificate_add(organization=org, pem=make_certificate("later@example.com")[0], actor=admin_user)
    soon = certificate_add(
        organization=org, pem=make_certificate("soon@example.com", not_after=days(10))[0], actor=admin_user
    )
    response = admin.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2 and body["next"] is None
    rows = {row["email"]: row for row in body["results"]}
    assert set(rows) == {"later@example.com", "soon@example.com"}
    assert rows["soon@example.com"]["id"] == soon.pk
    assert rows["soon@example.com"]["fingerprint_sha256"] == soon.fingerprint_sha256
    assert rows["soon@example.com"]["expires_soon"] is True
    assert rows["later@example.com"]["expires_soon"] is False
    assert {"id", "email", "fingerprint_sha256", "not_after"} <= set(rows["later@example.com"])


def test_certificate_delete_is_204_and_audited(admin, admin_user, org):
    certificate = certificate_add(organization=org, pem=make_certificate()[0], actor=admin_user)
    assert admin.get(f"{URL}{certificate.pk}/").json()["email"] == "audit@example.com"
    response = admin.delete(f"{URL}{certificate.pk}/")
    assert response.status_code == 204
    assert not RecipientCertificate.objects.exists()
    event = AuditEvent.objects.get(action="certificate.deleted")
    assert event.actor == admin_user and event.target_id == str(certificate.pk)
    assert event.details["fingerprint_sha256"] == certificate.fingerprint_sha256
    assert admin.delete(f"{URL}{certificate.pk}/").status_code == 404


def test_certificate_endpoints_hide_another_organization(org, other, admin_user):
    ours = certificate_add(organization=org, pem=make_certificate()[0], actor=admin_user)
    outsider = api(member(other, Role.ADMIN, username="gina"))
    assert outsider.get(URL).status_code == 404
    assert outsider.post(URL, {"pem": make_certificate("x@example.com")[0]}, format="json").status_code == 404
    assert outsider.delete(f"{URL}{ours.pk}/").status_code == 404
    # Through their own organization's URL, our certificate does not exist either.
    assert outsider.delete(f"/api/v1/orgs/globex/certificates/{ours.pk}/").status_code == 404
    assert outsider.get("/api/v1/orgs/globex/certificates/").json()["count"] == 0
    assert RecipientCertificate.objects.filter(organization=org).count() == 1


def test_certificate_endpoints_need_the_admin_role(org, admin_user):
    ours = certificate_add(organization=org, pem=make_certificate()[0], actor=admin_user)
    officer = api(member(org, Role.OFFICER, username="olivia"))
    assert officer.get(URL).status_code == 403
    assert officer.post(URL, {"pem": make_certificate("x@example.com")[0]}, format="json").status_code == 403
    assert officer.delete(f"{URL}{ours.pk}/").status_code == 403
    assert RecipientCertificate.objects.count() == 1


def test_certificates_appear_in_the_openapi_schema(admin):
    schema = admin.get("/api/schema/?format=json").json()
    assert "/api/v1/orgs/{org}/certificates/" in schema["paths"]
    assert "delete" in schema["paths"]["/api/v1/orgs/{org}/certificates/{id}/"]


# --- finding the certificate for a recipient ---------------------------------------------------


def test_certificate_for_recipient_returns_the_valid_one_with_the_latest_expiry(org, other, admin_user):
    shorter = certificate_add(organization=org, pem=make_certificate(not_after=days(40))[0], actor=admin_user)
    longer = certificate_add(organization=org, pem=make_certificate(not_after=days(400))[0], actor=admin_user)
    expired = RecipientCertificate.objects.create(
        organization=org,
        email="audit@example.com",
        pem=make_certificate()[0],
        fingerprint_sha256="e" * 64,
        not_before=days(-800),
        not_after=days(-1),
    )
    certificate_add(organization=other, pem=make_certificate("solo@example.com")[0], actor=None)

    assert certificate_for_recipient(organization=org, email="Audit@Example.com") == longer
    assert certificate_for_recipient(organization=org, email="audit@example.com", now=days(-1.5)) == expired
    # After the longer one expires nothing is valid; before it starts only the shorter one would be.
    assert certificate_for_recipient(organization=org, email="audit@example.com", now=days(500)) is None
    RecipientCertificate.objects.filter(pk=longer.pk).update(not_before=days(20))
    assert certificate_for_recipient(organization=org, email="audit@example.com") == shorter
    assert certificate_for_recipient(organization=org, email="solo@example.com") is None
    assert certificate_for_recipient(organization=other, email="solo@example.com") is not None
    assert certificate_for_recipient(organization=org, email="nobody@example.com") is None


# --- warning owners before a certificate expires ------------------------------------------------


@pytest.fixture
def expiring(org, admin_user):
    olivia = member(org, Role.OFFICER, username="olivia")
    oscar = member(org, Role.OFFICER, username="oscar")
    paula = member(org, Role.OFFICER, username="paula")
    make_schedule(org, olivia, name="Board pack", recipients=["Audit@example.com", "board@example.com"])
    make_schedule(org, olivia, name="Weekly digest", recipients=["audit@example.com"])
    make_schedule(org, oscar, name="Oscar's report", recipients=["audit@example.com"])
    paused = make_schedule(org, paula, name="Paused report", recipients=["audit@example.com"])
    paused.is_active = False
    paused.save(update_fields=["is_active"])
    audit = certificate_add(organization=org, pem=make_certificate(not_after=days(10))[0], actor=admin_user)
    board = certificate_add(
        organization=org, pem=make_certificate("board@example.com", not_after=days(25))[0], actor=admin_user
    )
    later = certificate_add(
        organization=org, pem=make_certificate("later@example.com", not_after=days(60))[0], actor=admin_user
    )
    mail.outbox.clear()
    return audit, board, later


def test_certificates_expiring_notify_tells_each_owner_once(expiring, settings):
    audit, board, later = expiring
    assert certificates_expiring_notify() == 2

    by_recipient = {tuple(m.to): m for m in mail.outbox}
    assert set(by_recipient) == {("olivia@example.com",), ("oscar@example.com",)}  # not the paused schedule's owner
    olivia = by_recipient[("olivia@example.com",)]
    assert olivia.from_email == settings.DEFAULT_FROM_EMAIL
    assert "audit@example.com" in olivia.subject and "board@example.com" in olivia.subject
    assert audit.fingerprint_sha256 in olivia.body and board.fingerprint_sha256 in olivia.body
    assert "Board pack, Weekly digest" in olivia.body
    assert f"expires {audit.not_after:%Y-%m-%d %H:%M} UTC" in olivia.body
    oscar = by_recipient[("oscar@example.com",)]
    assert "audit@example.com" in oscar.body and "board@example.com" not in oscar.body
    assert "Oscar's report" in oscar.body and "Board pack" not in oscar.body

    for certificate in (audit, board, later):
        certificate.refresh_from_db()
    assert audit.expiry_notified_at and board.expiry_notified_at and later.expiry_notified_at is None
    events = {e.target_id: e.details for e in AuditEvent.objects.filter(action="certificate.expiring")}
    assert set(events) == {str(audit.pk), str(board.pk)}
    assert events[str(audit.pk)]["owners"] == ["olivia", "oscar"]

    mail.outbox.clear()
    assert certificates_expiring_notify() == 0
    assert mail.outbox == []


def test_certificates_expiring_notify_stays_quiet_when_a_renewal_is_on_file(expiring, org, admin_user):
    audit, board, later = expiring
    certificate_add(organization=org, pem=make_certificate(not_after=days(365))[0], actor=admin_user)
    assert certificates_expiring_notify() == 2
    assert [m.to for m in mail.outbox] == [["olivia@example.com"]]
    assert "audit@example.com" not in mail.outbox[0].subject
    audit.refresh_from_db()
    assert audit.expiry_notified_at is not None  # flagged, so never reconsidered


def test_tick_runs_the_expiry_warning(expiring):
    result = tick()
    assert result["certificates_expiring"] == 2
    assert len(mail.outbox) == 2
    assert tick()["certificates_expiring"] == 0


# --- the admin ------------------------------------------------------------------------------------


@pytest.fixture
def browser(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def test_admin_upload_shows_the_error_on_the_pem_field(browser, org):
    response = browser.post(ADMIN_ADD, {"organization": org.pk, "pem": make_certificate(key="ec")[0]})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["pem"] and "EC keys cannot be used" in errors["pem"][0]
    assert "EC keys cannot be used for S/MIME encryption here" in response.content.decode()
    assert not RecipientCertificate.objects.exists()


def test_admin_upload_creates_the_certificate_through_the_service(browser, org, admin_user):
    pem = make_certificate("Board@Example.com", not_after=days(12))[0]
    response = browser.post(ADMIN_ADD, {"organization": org.pk, "pem": pem})
    assert response.status_code == 302, response.context["adminform"].form.errors
    certificate = RecipientCertificate.objects.get()
    assert certificate.email == "board@example.com" and certificate.created_by == admin_user
    assert certificate.fingerprint_sha256 == der_sha256(pem)
    assert AuditEvent.objects.filter(action="certificate.added", actor=admin_user).count() == 1

    html = browser.get(ADMIN_LIST).content.decode()
    assert "board@example.com" in html and certificate.fingerprint_sha256[:12] in html
    assert "expires soon" in html and "#dc3545" in html
    assert browser.get(f"{ADMIN_LIST}{certificate.pk}/change/").status_code == 200

    again = browser.post(ADMIN_ADD, {"organization": org.pk, "pem": pem})
    assert "already on file" in again.context["adminform"].form.errors["pem"][0]

    deleted = browser.post(f"{ADMIN_LIST}{certificate.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not RecipientCertificate.objects.exists()
    assert AuditEvent.objects.filter(action="certificate.deleted").count() == 1


def test_admin_offers_only_organizations_where_the_user_is_admin(browser, org, other, admin_user):
    member(other, Role.ADMIN, username="gina")
    theirs = certificate_add(organization=other, pem=make_certificate("g@example.com")[0], actor=None)
    response = browser.post(ADMIN_ADD, {"organization": other.pk, "pem": make_certificate()[0]})
    assert "Select a valid choice" in response.content.decode()
    assert not RecipientCertificate.objects.filter(organization=other).exclude(pk=theirs.pk).exists()
    assert "g@example.com" not in browser.get(ADMIN_LIST).content.decode()
    assert browser.get(f"{ADMIN_LIST}{theirs.pk}/change/").status_code == 404


def test_admin_expired_badge_and_officers_cannot_reach_certificates(org, admin_user, browser):
    RecipientCertificate.objects.create(
        organization=org,
        email="old@example.com",
        pem=make_certificate("old@example.com")[0],
        fingerprint_sha256="a" * 64,
        not_before=days(-400),
        not_after=days(-3),
    )
    assert ">expired</span>" in browser.get(ADMIN_LIST).content.decode()
    officer = Client()
    officer.force_login(member(org, Role.OFFICER, username="olivia"))
    assert officer.get(ADMIN_ADD).status_code == 403
    assert officer.get(ADMIN_LIST).status_code == 403
