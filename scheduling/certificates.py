"""Recipients' S/MIME certificates: check a pasted PEM, keep it, find the one to encrypt to,
and warn schedule owners before one expires.

S/MIME reports are encrypted with pyca/cryptography's ``PKCS7EnvelopeBuilder``, which takes
RSA recipient keys only; a certificate is accepted only if that builder can use it and its
own extensions allow encryption for email (RFC 8550/8551: KeyUsage keyEncipherment,
ExtendedKeyUsage emailProtection).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from audit.services import audit_record
from config.errors import ApplicationError
from organizations.models import Organization
from scheduling.models import RecipientCertificate, ReportSchedule

logger = logging.getLogger(__name__)

EXPIRY_WARNING = dt.timedelta(days=30)
MIN_RSA_BITS = 2048
MAX_PEM_CHARS = 64_000  # a certificate is a few kilobytes; anything far larger is not one
_CERT_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.DOTALL)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_ASK = "ask the recipient for their RSA encryption certificate (S/MIME)."


@dataclass(frozen=True)
class ParsedCertificate:
    """What a valid recipient certificate tells us; ``pem`` is the certificate re-encoded."""

    pem: str
    email: str
    fingerprint_sha256: str
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, field="pem")


def _load(pem: str) -> x509.Certificate:
    text = (pem or "").strip()
    if not text:
        raise _invalid("Paste the recipient's certificate in PEM format (-----BEGIN CERTIFICATE-----…).")
    if len(text) > MAX_PEM_CHARS:
        raise _invalid("This is far too long for one certificate: paste only the recipient's certificate.")
    if _PRIVATE_KEY.search(text):
        raise _invalid(
            "This is a private key, not a certificate: paste the recipient's certificate "
            "(-----BEGIN CERTIFICATE-----…). A private key must never leave its owner."
        )
    blocks = _CERT_BLOCK.findall(text)
    if not blocks:
        raise _invalid(
            "This is not a PEM certificate: paste the recipient's certificate, "
            "from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----."
        )
    if len(blocks) > 1:
        raise _invalid(
            f"This holds {len(blocks)} certificates: paste one, the recipient's own certificate, without its chain."
        )
    try:
        certificate = x509.load_pem_x509_certificate(blocks[0].encode("ascii"))
        certificate.extensions  # noqa: B018 — parse them now: a malformed extension is unreadable too
    except (ValueError, UnicodeEncodeError):
        raise _invalid("This certificate cannot be read (its PEM or DER encoding is damaged).") from None
    return certificate


def _extension(certificate: x509.Certificate, kind: type[Any]) -> Any:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _email(certificate: x509.Certificate) -> str | None:
    """The first usable address: subject alternative names first, then the subject's emailAddress."""
    san = _extension(certificate, x509.SubjectAlternativeName)
    candidates: list[str] = list(san.get_values_for_type(x509.RFC822Name)) if san is not None else []
    candidates += [
        str(attribute.value) for attribute in certificate.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
    ]
    for candidate in candidates:
        address = candidate.strip().lower()
        try:
            validate_email(address)
        except ValidationError:
            continue
        return address
    return None


def _check_key(certificate: x509.Certificate) -> None:
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        raise _invalid(f"EC keys cannot be used for S/MIME encryption here: {_ASK}")
    if not isinstance(key, rsa.RSAPublicKey):
        raise _invalid(f"This certificate's key ({type(key).__name__}) cannot be used for encryption here: {_ASK}")
    if key.key_size < MIN_RSA_BITS:
        raise _invalid(
            f"This certificate's RSA key has {key.key_size} bits, too weak to encrypt to: "
            f"at least {MIN_RSA_BITS} bits are needed."
        )
    key_usage = _extension(certificate, x509.KeyUsage)
    if key_usage is not None and not key_usage.key_encipherment:
        raise _invalid(
            "This certificate's key usage does not allow key encipherment (it is probably a signing "
            f"certificate): {_ASK}"
        )
    extended = _extension(certificate, x509.ExtendedKeyUsage)
    if extended is not None and not (
        ExtendedKeyUsageOID.EMAIL_PROTECTION in extended or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in extended
    ):
        raise _invalid(f"This certificate is not for email protection (its extended key usage excludes it): {_ASK}")


def certificate_parse(pem: str, *, now: dt.datetime | None = None) -> ParsedCertificate:
    """Check that ``pem`` is one current certificate we can encrypt email to; ApplicationError on ``pem``."""
    now = now or timezone.now()
    certificate = _load(pem)
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if not_after <= now:
        raise _invalid(
            f"This certificate expired on {not_after:%Y-%m-%d %H:%M} UTC: ask the recipient for their current one."
        )
    if not_before > now:
        raise _invalid(f"This certificate is not valid until {not_before:%Y-%m-%d %H:%M} UTC: add it from then on.")
    email = _email(certificate)
    if email is None:
        raise _invalid(
            "This certificate names no email address (none in its subject alternative names or its subject), "
            "so it cannot be matched to a recipient."
        )
    _check_key(certificate)
    return ParsedCertificate(
        pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        email=email,
        fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        subject=certificate.subject.rfc4514_string()[:500],
        not_before=not_before,
        not_after=not_after,
    )


def certificate_validate(*, organization: Organization, pem: str, now: dt.datetime | None = None) -> ParsedCertificate:
    """``certificate_parse`` plus the organization's rule: each certificate once."""
    parsed = certificate_parse(pem, now=now)
    existing = RecipientCertificate.objects.filter(
        organization=organization, fingerprint_sha256=parsed.fingerprint_sha256
    ).first()
    if existing is not None:
        raise _invalid(f"This certificate is already on file for {existing.email}.")
    return parsed


# --- writes -------------------------------------------------------------------------------------


def _audit_details(certificate: RecipientCertificate) -> dict[str, Any]:
    return {
        "email": certificate.email,
        "fingerprint_sha256": certificate.fingerprint_sha256,
        "not_after": certificate.not_after,
    }


@transaction.atomic
def certificate_add(
    *, organization: Organization, pem: str, actor: Any, ip_address: str | None = None
) -> RecipientCertificate:
    """Keep a recipient's certificate for the organization (validated, audited)."""
    parsed = certificate_validate(organization=organization, pem=pem)
    try:
        with transaction.atomic():
            certificate = RecipientCertificate.objects.create(
                organization=organization,
                email=parsed.email,
                pem=parsed.pem,
                fingerprint_sha256=parsed.fingerprint_sha256,
                subject=parsed.subject,
                not_before=parsed.not_before,
                not_after=parsed.not_after,
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
            )
    except IntegrityError:  # the same certificate added at the same moment by someone else
        raise _invalid(f"This certificate is already on file for {parsed.email}.") from None
    audit_record(
        organization_id=organization.pk,
        action="certificate.added",
        actor=actor,
        target=certificate,
        details=_audit_details(certificate),
        ip_address=ip_address,
    )
    return certificate


@transaction.atomic
def certificate_delete(*, certificate: RecipientCertificate, actor: Any, ip_address: str | None = None) -> None:
    """Forget a certificate (audited); S/MIME reports to its address then need another one."""
    audit_record(
        organization_id=certificate.organization_id,
        action="certificate.deleted",
        actor=actor,
        target=certificate,
        details=_audit_details(certificate),
        ip_address=ip_address,
    )
    certificate.delete()


def certificates_expiring_notify(*, now: dt.datetime | None = None) -> int:
    """Tell the owners of active schedules sending to an address whose certificate expires within
    ``EXPIRY_WARNING`` (one email per owner), once per certificate; returns how many were flagged.

    A certificate is flagged (``expiry_notified_at``) by a conditional update, so two workers
    never both warn about it; the emails go out after the flags are committed, and one that
    cannot be sent is logged, not retried (the warning is a courtesy, the certificate list in
    the admin shows the same badge).
    """
    now = now or timezone.now()
    due = list(
        RecipientCertificate.objects.filter(expiry_notified_at__isnull=True, not_after__lte=now + EXPIRY_WARNING)
        .select_related("organization")
        .order_by("not_after", "pk")
    )
    if not due:
        return 0
    schedules_by_org: dict[int, list[ReportSchedule]] = defaultdict(list)
    for schedule in ReportSchedule.objects.filter(
        is_active=True, organization_id__in={c.organization_id for c in due}
    ).select_related("owner", "organization"):
        schedules_by_org[schedule.organization_id].append(schedule)

    notices: dict[Any, list[tuple[RecipientCertificate, list[ReportSchedule]]]] = defaultdict(list)
    flagged = 0
    with transaction.atomic():
        for certificate in due:
            if not RecipientCertificate.objects.filter(pk=certificate.pk, expiry_notified_at__isnull=True).update(
                expiry_notified_at=now
            ):
                continue  # another worker got there first
            flagged += 1
            # A renewal already on file needs nobody to act: flag the old one quietly.
            renewed = RecipientCertificate.objects.filter(
                organization_id=certificate.organization_id,
                email=certificate.email,
                not_after__gt=now + EXPIRY_WARNING,
            ).exists()
            using = [
                s
                for s in schedules_by_org[certificate.organization_id]
                if not renewed and certificate.email in {str(r).strip().lower() for r in s.recipients or []}
            ]
            by_owner: dict[Any, list[ReportSchedule]] = defaultdict(list)
            for schedule in using:
                by_owner[schedule.owner].append(schedule)
            for owner, schedules in by_owner.items():
                notices[owner].append((certificate, schedules))
            audit_record(
                organization_id=certificate.organization_id,
                action="certificate.expiring",
                target=certificate,
                details={
                    **_audit_details(certificate),
                    "renewed": renewed,
                    "owners": sorted(o.get_username() for o in by_owner),
                },
            )
    for owner, items in notices.items():
        _expiry_notice(owner, items, now)
    return flagged


def _expiry_notice(
    owner: Any, items: list[tuple[RecipientCertificate, list[ReportSchedule]]], now: dt.datetime
) -> None:
    if not owner.email:
        return
    context = {
        "owner": owner,
        "items": [{"certificate": c, "schedules": schedules, "expired": c.not_after <= now} for c, schedules in items],
        "site_url": settings.SITE_URL,
    }
    addresses = ", ".join(c.email for c, _ in items)
    try:
        EmailMessage(
            subject=f"Encryption certificate expiring: {addresses}",
            body=render_to_string("scheduling/email/certificates_expiring.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[owner.email],
            connection=get_connection(timeout=settings.EMAIL_TIMEOUT),
        ).send()
    except Exception:
        logger.exception("could not warn %s about expiring certificates", owner.email)


# --- reads --------------------------------------------------------------------------------------


def certificates_for(*, organization: Organization) -> QuerySet[RecipientCertificate]:
    """The organization's certificates, by address, the longest-lived first."""
    return (
        RecipientCertificate.objects.filter(organization=organization)
        .select_related("organization", "created_by")
        .order_by("email", "-not_after", "pk")
    )


def certificate_get(*, organization: Organization, pk: Any) -> RecipientCertificate | None:
    """One of the organization's certificates, or None (another organization's is None too)."""
    try:
        return certificates_for(organization=organization).filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        return None


def certificate_for_recipient(
    *, organization: Organization, email: str, now: dt.datetime | None = None
) -> RecipientCertificate | None:
    """The certificate to encrypt to ``email`` now: valid today, the latest expiry first; or None."""
    now = now or timezone.now()
    return (
        RecipientCertificate.objects.filter(
            organization=organization,
            email__iexact=(email or "").strip(),
            not_before__lte=now,
            not_after__gt=now,
        )
        .order_by("-not_after", "-pk")
        .first()
    )
