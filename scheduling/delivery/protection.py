"""The protection transforms of emailed reports.

- ``zip_encrypt``: the file inside a ZIP encrypted with AES-256 (WinZip AE-2, which 7-Zip,
  WinZip, macOS Archive Utility with a helper, and ``pyzipper`` open), keyed by the
  schedule's passphrase;
- ``smime_envelope``: the whole message (text, HTML, attachment) as S/MIME enveloped data
  (``application/pkcs7-mime; smime-type=enveloped-data``, AES-256-CBC) for one recipient's
  certificate, which Outlook, Apple Mail and Thunderbird open natively.
"""

from __future__ import annotations

import io
from email.header import Header
from email.mime.application import MIMEApplication
from email.utils import formatdate
from typing import Any

import pyzipper
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.message import MIMEMixin

ENVELOPE_HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version")


def zip_encrypt(name: str, data: bytes, passphrase: str) -> bytes:
    """A ZIP holding ``data`` as ``name``, AES-256 encrypted (WinZip AE-2)."""
    buffer = io.BytesIO()
    with pyzipper.AESZipFile(buffer, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as archive:
        archive.setpassword(passphrase.encode())
        archive.setencryption(pyzipper.WZ_AES, nbits=256)
        archive.writestr(name, data)
    return buffer.getvalue()


class _MIMEEnvelope(MIMEMixin, MIMEApplication):  # type: ignore[misc]  # as Django's own SafeMIME classes
    """An ``application/pkcs7-mime`` part that Django's mail backends can serialise."""


class EnvelopedMessage(EmailMessage):
    """An email whose whole content is one S/MIME envelope (the DER ``enveloped``)."""

    def __init__(self, original: EmailMessage, enveloped: bytes) -> None:
        super().__init__(
            subject=original.subject,
            from_email=original.from_email,
            to=original.to,
            headers=original.extra_headers,
            connection=original.connection,
        )
        self.enveloped = enveloped

    def message(self, **kwargs: Any) -> Any:
        part = _MIMEEnvelope(self.enveloped, "pkcs7-mime", smime_type="enveloped-data", name="smime.p7m")
        part.add_header("Content-Disposition", "attachment", filename="smime.p7m")
        part["Subject"] = Header(str(self.subject), "utf-8").encode()
        part["From"] = self.extra_headers.get("From", self.from_email)
        part["To"] = ", ".join(self.to)
        part["Date"] = formatdate(localtime=settings.EMAIL_USE_LOCALTIME)
        part["Message-ID"] = self.extra_headers["Message-ID"]
        return part


def smime_envelope(message: EmailMessage, certificate_pem: str) -> tuple[EnvelopedMessage, bytes]:
    """``message`` enveloped for the certificate's key; also the DER bytes (what is proven)."""
    inner = message.message()
    for header in ENVELOPE_HEADERS:
        del inner[header]
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    enveloped = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(inner.as_bytes(linesep="\r\n"))  # MIME in canonical CRLF form, as S/MIME expects
        .add_recipient(certificate)
        .set_content_encryption_algorithm(algorithms.AES256)
        .encrypt(serialization.Encoding.DER, [])
    )
    return EnvelopedMessage(message, enveloped), enveloped
