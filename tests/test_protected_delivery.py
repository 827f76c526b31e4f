"""Protected delivery against a real SMTP server on loopback: an AES-256 ZIP opened with
the passphrase (pyzipper), S/MIME decrypted by the openssl command-line tool with the
recipient's key, link-only messages, the organization's protected policy, and proof of
what was sent (the SHA-256 of exactly the bytes the server received)."""

from __future__ import annotations

import csv
import datetime as dt
import email
import hashlib
import io
import logging
import shutil
import subprocess
from email.message import Message
from pathlib import Path

import pytest
import pyzipper
from rest_framework.test import APIClient

from audit.models import AuditEvent
from exports.tests.factories import org_with_cases
from organizations.models import Organization, Role
from organizations.tests.factories import member
from scheduling.certificates import certificate_add
from scheduling.dispatch import schedules_dispatch
from scheduling.models import ReportSchedule, ScheduleRun
from scheduling.tests.certs import make_certificate
from tests.smtp import ScriptedHandler, smtp_server

pytestmark = pytest.mark.django_db

PASSPHRASE = "correct horse battery staple"
SLOT = dt.datetime(2026, 4, 1, 7, tzinfo=dt.UTC)


@pytest.fixture
def org() -> Organization:
    return org_with_cases()[0]  # acme, 5 cases in March 2026


@pytest.fixture
def admin(org):
    user = member(org, Role.ADMIN, username="ada")
    user.email = "ada@example.com"
    user.save()
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def smtp(settings):
    handler = ScriptedHandler()
    with smtp_server(handler) as port:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
        yield handler


def _schedule(client: APIClient, recipients: list[str], **delivery) -> dict:
    body = {
        "name": "Monthly cases",
        "export": {"dataset": "cases", "format": "csv", "filters": {"period": "previous_month"}},
        "schedule": {"kind": "monthly", "time": "08:00", "day_of_month": 1},
        "timezone": "Europe/London",
        "delivery": {"method": "email", "recipients": recipients, **delivery},
    }
    response = client.post("/api/v1/orgs/acme/schedules/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _run(schedule_id: int, capture, when: dt.datetime = SLOT) -> ScheduleRun:
    ReportSchedule.objects.filter(pk=schedule_id).update(next_run_at=when)
    with capture(execute=True):
        schedules_dispatch(now=when)
    return ScheduleRun.objects.filter(schedule_id=schedule_id).order_by("-scheduled_for")[0]


def _received(handler: ScriptedHandler, address: str) -> list[tuple[Message, bytes]]:
    return [(email.message_from_bytes(e.content), e.content) for e in handler.messages if e.rcpt_tos == [address]]


def _payload(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def _attachments(message: Message) -> list[tuple[str, bytes]]:
    return [(str(part.get_filename()), _payload(part)) for part in message.walk() if part.get_filename()]


def _text(message: Message) -> str:
    return _payload(next(p for p in message.walk() if p.get_content_type() == "text/plain")).decode()


def _history(client: APIClient, schedule_id: int) -> dict:
    return client.get(f"/api/v1/orgs/acme/schedules/{schedule_id}/runs/").json()["results"][0]


def test_encrypted_zip_opens_with_the_passphrase_only(org, admin, smtp, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    body = _schedule(admin, ["audit@example.com"], protection="encrypted_zip", passphrase=PASSPHRASE)
    assert body["delivery"]["protection"] == "encrypted_zip" and body["delivery"]["passphrase_set"] is True
    assert "passphrase" not in body["delivery"] and PASSPHRASE not in str(body)
    run = _run(body["id"], django_capture_on_commit_callbacks)
    assert run.status == "success", run.error

    ((message, raw),) = _received(smtp, "audit@example.com")
    ((name, data),) = _attachments(message)
    job = run.export_job
    assert name == f"{job.file_name}.zip"
    with pyzipper.AESZipFile(io.BytesIO(data)) as archive:
        (info,) = archive.infolist()
        assert info.filename == job.file_name
        with pytest.raises(RuntimeError):  # encrypted: no passphrase, no file
            archive.read(info.filename)
        archive.setpassword(b"not the passphrase")
        with pytest.raises(RuntimeError):
            archive.read(info.filename)
        archive.setpassword(PASSPHRASE.encode())
        inner = archive.read(info.filename)
    rows = list(csv.reader(io.StringIO(inner.decode("utf-8-sig"))))
    assert len(rows) == 1 + 5 and rows[0][0] == "Case reference"
    assert "passphrase agreed with the sender" in _text(message)

    delivery = run.deliveries.get()
    assert delivery.protection == "encrypted_zip" and delivery.attached
    assert delivery.sha256 == hashlib.sha256(data).hexdigest()
    history = _history(admin, body["id"])["deliveries"][0]
    assert history["protection"] == "encrypted_zip" and history["sha256"] == delivery.sha256
    sent = AuditEvent.objects.get(action="delivery.sent")
    assert sent.details["sha256"] == delivery.sha256 and sent.details["protection"] == "encrypted_zip"
    # The passphrase is nowhere but in the recipient's head: not in the email, audit or logs.
    for place in (raw, str(list(AuditEvent.objects.values_list("details", flat=True))).encode(), caplog.text.encode()):
        assert PASSPHRASE.encode() not in place
    stored = ReportSchedule.objects.get(pk=body["id"]).passphrase_encrypted
    assert stored and PASSPHRASE not in stored


@pytest.mark.parametrize("passphrase", [None, "short", "x" * 11])
def test_encrypted_zip_needs_a_passphrase_of_twelve_characters(org, admin, passphrase):
    delivery = {"method": "email", "recipients": ["audit@example.com"], "protection": "encrypted_zip"}
    if passphrase is not None:
        delivery["passphrase"] = passphrase
    body = {
        "name": "Zip",
        "export": {"dataset": "cases", "format": "csv"},
        "schedule": {"kind": "daily", "time": "08:00"},
        "delivery": delivery,
    }
    response = admin.post("/api/v1/orgs/acme/schedules/", body, format="json")
    assert response.status_code == 400
    assert "passphrase" in response.json()["delivery"]
    assert not ReportSchedule.objects.exists()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command-line tool")
def test_smime_is_decrypted_by_openssl_and_a_recipient_without_certificate_fails_alone(
    org, admin, smtp, tmp_path: Path, django_capture_on_commit_callbacks
):
    certificate, key = make_certificate("audit@example.com")
    certificate_add(organization=org, pem=certificate, actor=None)
    body = _schedule(admin, ["audit@example.com", "nocert@example.com"], protection="smime")
    run = _run(body["id"], django_capture_on_commit_callbacks)
    assert run.status == "partial"
    failed = run.deliveries.get(recipient="nocert@example.com")
    assert failed.status == "failed" and "No valid S/MIME certificate for nocert@example.com" in failed.last_error
    assert _received(smtp, "nocert@example.com") == []

    ((message, raw),) = _received(smtp, "audit@example.com")
    assert message.get_content_type() == "application/pkcs7-mime"
    assert message.get_param("smime-type") == "enveloped-data"
    assert b"Case reference" not in raw and message["Subject"]  # nothing readable but the headers
    (tmp_path / "message.eml").write_bytes(raw)
    (tmp_path / "cert.pem").write_text(certificate)
    (tmp_path / "key.pem").write_bytes(key)
    decrypted = subprocess.run(
        ["openssl", "smime", "-decrypt", "-in", "message.eml", "-recip", "cert.pem", "-inkey", "key.pem"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    ).stdout
    inner = email.message_from_bytes(decrypted)
    ((name, data),) = _attachments(inner)
    assert run.export_job is not None and name == run.export_job.file_name
    assert len(list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))) == 1 + 5
    assert "Download" in _text(inner)
    # Without the recipient's key nothing comes out.
    other_certificate, other_key = make_certificate("audit@example.com")
    (tmp_path / "other.pem").write_text(other_certificate)
    (tmp_path / "other-key.pem").write_bytes(other_key)
    refused = subprocess.run(
        ["openssl", "smime", "-decrypt", "-in", "message.eml", "-recip", "other.pem", "-inkey", "other-key.pem"],
        cwd=tmp_path,
        capture_output=True,
    )
    assert refused.returncode != 0

    delivery = run.deliveries.get(recipient="audit@example.com")
    assert delivery.protection == "smime"
    assert delivery.sha256 == hashlib.sha256(_payload(message)).hexdigest()


def test_link_only_sends_no_attachment(org, admin, smtp, django_capture_on_commit_callbacks):
    body = _schedule(admin, ["audit@example.com"], protection="link_only")
    run = _run(body["id"], django_capture_on_commit_callbacks)
    assert run.status == "success"
    ((message, _),) = _received(smtp, "audit@example.com")
    assert _attachments(message) == []
    text = _text(message)
    assert "link only" in text and "/d/" in text
    delivery = run.deliveries.get()
    assert delivery.protection == "link_only" and not delivery.attached and delivery.sha256 == ""
    assert _history(admin, body["id"])["deliveries"][0]["sha256"] is None


def test_a_protected_policy_refuses_none_and_sends_old_schedules_as_links(
    org, admin, smtp, django_capture_on_commit_callbacks
):
    plain = _schedule(admin, ["audit@example.com"])
    assert admin.patch("/api/v1/orgs/acme/", {"delivery_policy": "protected"}, format="json").status_code == 200
    body = {
        "name": "Plain",
        "export": {"dataset": "cases", "format": "csv"},
        "schedule": {"kind": "daily", "time": "08:00"},
        "delivery": {"method": "email", "recipients": ["audit@example.com"], "protection": "none"},
    }
    refused = admin.post("/api/v1/orgs/acme/schedules/", body, format="json")
    assert refused.status_code == 400 and "protection" in refused.json()["delivery"]
    change = admin.patch(f"/api/v1/orgs/acme/schedules/{plain['id']}/", {"name": "Plain still"}, format="json")
    assert change.status_code == 400  # a change must choose a protection

    for day in (1, 2):
        run = _run(plain["id"], django_capture_on_commit_callbacks, SLOT + dt.timedelta(days=day))
        assert run.status == "success"
        assert run.deliveries.get().protection == "link_only"
    reports = _received(smtp, "audit@example.com")
    assert len(reports) == 2 and all(_attachments(m) == [] for m, _ in reports)
    assert "protected deliveries only" in _text(reports[0][0])
    notices = _received(smtp, "ada@example.com")
    assert len(notices) == 1 and "link only" in notices[0][0]["Subject"].lower()


def test_the_attachment_limit_counts_the_encoded_size(org, admin, smtp, settings, django_capture_on_commit_callbacks):
    body = _schedule(admin, ["audit@example.com"])
    run = _run(body["id"], django_capture_on_commit_callbacks)
    ((message, _),) = _received(smtp, "audit@example.com")
    ((_, data),) = _attachments(message)
    size = len(data)
    # Room for the raw file but not for its base64 (a third more) plus the message: a link.
    settings.EMAIL_MAX_ATTACHMENT_MB = (size * 1.2 + 8192) / 1024 / 1024
    run = _run(body["id"], django_capture_on_commit_callbacks, SLOT + dt.timedelta(days=1))
    assert run.status == "success"
    message = _received(smtp, "audit@example.com")[-1][0]
    assert _attachments(message) == []
    assert "once encoded for email" in _text(message) and "/d/" in _text(message)
    assert not run.deliveries.get().attached


def test_members_only_links_ask_for_a_sign_in(org, admin, smtp, django_capture_on_commit_callbacks):
    assert admin.patch("/api/v1/orgs/acme/", {"link_access": "members_only"}, format="json").status_code == 200
    body = _schedule(admin, ["audit@example.com"], protection="link_only")
    _run(body["id"], django_capture_on_commit_callbacks)
    ((message, _),) = _received(smtp, "audit@example.com")
    text = _text(message)
    assert "sign in" in text.lower()
    link = next(line for line in text.splitlines() if "/d/" in line).strip().removeprefix("http://127.0.0.1:8000")
    anonymous = APIClient().get(link)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
