"""Real X.509 certificates and keys for tests (S/MIME recipients), made with pyca/cryptography.

The private key comes back as unencrypted PKCS#8 PEM, so a test can write both to files and
decrypt a message as its recipient would::

    openssl smime -decrypt -in message.eml -recip cert.pem -inkey key.pem
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def make_certificate(
    email: str | None = "audit@example.com",
    *,
    key: Literal["rsa", "ec"] = "rsa",
    bits: int = 2048,
    not_after: dt.datetime | None = None,
    not_before: dt.datetime | None = None,
    key_usage: Iterable[str] | None = ("key_encipherment",),
    eku_email: bool | None = True,
    email_in: Literal["san", "subject", "both"] | None = "san",
) -> tuple[str, bytes]:
    """A self-signed certificate for ``email`` and its private key: ``(pem_cert, pem_key)``.

    ``not_after`` defaults to a year from now, ``not_before`` to an hour ago. ``key_usage``
    names the KeyUsage flags to set (``None`` leaves the extension out); ``eku_email``
    True adds ExtendedKeyUsage emailProtection, False an ExtendedKeyUsage without it
    (serverAuth, clientAuth), None none at all. ``email_in`` puts the address in the
    subject alternative name, the subject's emailAddress, both, or nowhere (``None``).
    """
    now = dt.datetime.now(dt.UTC)
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if key == "rsa":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    elif key == "ec":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"key must be 'rsa' or 'ec', not {key!r}")

    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, (email or "No address").split("@")[0] or "Recipient")]
    if email and email_in in ("subject", "both"):
        attributes.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    name = x509.Name(attributes)

    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(hours=1))
        .not_valid_after(not_after or now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if email and email_in in ("san", "both"):
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    if key_usage is not None:
        flags = set(key_usage)
        unknown = flags - set(KEY_USAGE_FLAGS)
        if unknown:
            raise ValueError(f"unknown key usage flags: {sorted(unknown)}")
        builder = builder.add_extension(
            x509.KeyUsage(
                **{flag: flag in flags for flag in KEY_USAGE_FLAGS},
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if eku_email is not None:
        usages = (
            [ExtendedKeyUsageOID.EMAIL_PROTECTION]
            if eku_email
            else [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)

    certificate = builder.sign(private_key, hashes.SHA256())
    pem_cert = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    pem_key = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem_cert, pem_key
