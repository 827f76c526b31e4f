"""One report email per recipient, protected as the schedule and its organization ask."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection, make_msgid
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from config.crypto import SecretUnreadable, secret_decrypt
from exports.downloads import MEDIA_TYPES, download_link, link_requires_sign_in
from exports.models import ExportJob
from exports.services import exports_storage
from organizations.models import DeliveryPolicy
from scheduling.certificates import certificate_for_recipient
from scheduling.delivery.base import PermanentDeliveryError, Sent
from scheduling.delivery.protection import smime_envelope, zip_encrypt
from scheduling.delivery.smtp import smtp_send
from scheduling.models import Delivery, Protection, ReportSchedule
from scheduling.notices import protection_fallback_notice
from scheduling.timemath import get_zone

BASE64_GROWTH = 4 / 3
HEADROOM = 8192  # the message's text, HTML and headers


def effective_protection(schedule: ReportSchedule) -> str:
    """The schedule's protection, or ``link_only`` for an unprotected schedule of an
    organization whose policy is protected delivery (its owner is told once)."""
    if schedule.protection != Protection.NONE or schedule.organization.delivery_policy != DeliveryPolicy.PROTECTED:
        return schedule.protection
    told = ReportSchedule.objects.filter(pk=schedule.pk).filter(Q(protection_notice_at__isnull=True))
    if told.update(protection_notice_at=timezone.now()):
        protection_fallback_notice(schedule)
    return Protection.LINK_ONLY


def encoded_size(file_size: int, protection: str) -> int:
    """What a file of ``file_size`` bytes weighs in the message: base64 adds a third, and
    S/MIME encodes the already encoded message once more."""
    growth = BASE64_GROWTH * BASE64_GROWTH if protection == Protection.SMIME else BASE64_GROWTH
    return int(file_size * growth) + HEADROOM


def email_deliver(delivery: Delivery) -> Sent:
    """Compose, protect and send one recipient's message."""
    run, job = delivery.run, delivery.run.export_job
    assert job is not None
    schedule = run.schedule
    organization = schedule.organization
    protection = effective_protection(schedule)
    certificate = None
    if protection == Protection.SMIME:
        certificate = certificate_for_recipient(organization=organization, email=delivery.recipient)
        if certificate is None:
            raise PermanentDeliveryError(
                f"No valid S/MIME certificate for {delivery.recipient}, so nothing was sent to them: "
                "an organization admin can upload it under certificates."
            )
    limit = int(settings.EMAIL_MAX_ATTACHMENT_MB * 1024 * 1024)
    size = job.file_size_bytes or 0
    wants_file = schedule.attach_file and protection != Protection.LINK_ONLY
    attach = wants_file and encoded_size(size, protection) <= limit
    context = _context(delivery, job, protection, attach=attach, wants_file=wants_file, size=size)
    subject = f"{'[Test] ' if context['test'] else ''}{schedule.name} — {context['period']}"
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("scheduling/email/report.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[delivery.recipient],
        connection=get_connection(timeout=settings.EMAIL_TIMEOUT),
    )
    message.attach_alternative(render_to_string("scheduling/email/report.html", context), "text/html")
    message.extra_headers["Message-ID"] = message_id = _message_id(delivery)
    digest = ""
    if attach:
        name, content, mime = _attachment(schedule, job, protection)
        message.attach(name, content, mime)
        digest = hashlib.sha256(content).hexdigest()
    outgoing: EmailMessage = message
    if certificate is not None:
        outgoing, enveloped = smime_envelope(message, certificate.pem)
        digest = hashlib.sha256(enveloped).hexdigest()  # the S/MIME body is what was attached
    smtp_send(outgoing)
    return Sent(key=message_id, attached=attach, protection=protection, sha256=digest)


def _attachment(schedule: ReportSchedule, job: ExportJob, protection: str) -> tuple[str, bytes, str]:
    """The attached file: the export, or the export inside an encrypted ZIP."""
    with exports_storage().open(job.storage_key, "rb") as handle:
        content = handle.read()
    if protection != Protection.ENCRYPTED_ZIP:
        return job.file_name, content, MEDIA_TYPES.get(job.format, "application/octet-stream").split(";")[0]
    try:
        passphrase = secret_decrypt(schedule.passphrase_encrypted)
    except SecretUnreadable:
        raise PermanentDeliveryError(
            "The ZIP passphrase cannot be read with the server's current key: set it again on the schedule."
        ) from None
    return f"{job.file_name}.zip", zip_encrypt(job.file_name, content, passphrase), "application/zip"


def _context(
    delivery: Delivery, job: ExportJob, protection: str, *, attach: bool, wants_file: bool, size: int
) -> dict[str, object]:
    run, schedule = delivery.run, delivery.run.schedule
    organization = schedule.organization
    limit_mb = settings.EMAIL_MAX_ATTACHMENT_MB
    if wants_file and not attach:
        note = (
            f"The file is {size / 1024 / 1024:.1f} MB ({encoded_size(size, protection) / 1024 / 1024:.1f} MB once "
            f"encoded for email), over the {limit_mb:g} MB attachment limit, so it is not attached: use the "
            "download link."
        )
    elif protection == Protection.LINK_ONLY and schedule.protection == Protection.NONE:
        note = f"{organization.name} sends reports as protected deliveries only, so this one comes as a link."
    elif protection == Protection.LINK_ONLY:
        note = "This report is sent as a link only: no file is attached to this email."
    else:
        note = ""
    return {
        "schedule": schedule,
        "run": run,
        "job": job,
        "organization": organization,
        "period": _period(job),
        "generated": (job.completed_at or timezone.now()).astimezone(get_zone(schedule.timezone)),
        "link": download_link(job),
        "link_days": 7,
        "sign_in_required": link_requires_sign_in(organization),
        "attached": attach,
        "attachment_name": f"{job.file_name}.zip" if protection == Protection.ENCRYPTED_ZIP else job.file_name,
        "encrypted_zip": attach and protection == Protection.ENCRYPTED_ZIP,
        "link_only_reason": note,
        "test": run.recipients_override is not None,
    }


def _period(job: ExportJob) -> str:
    start, end = job.filters.get("created_from"), job.filters.get("created_to")
    if not start and not end:
        return "all cases"
    return f"{start or 'the beginning'} to {end or 'today'}"


def _message_id(delivery: Delivery) -> str:
    return make_msgid(
        idstring=f"dossier-{delivery.run_id}-{delivery.pk}",
        domain=settings.SITE_URL.split("//")[-1].split(":")[0].split("/")[0] or "localhost",
    )
