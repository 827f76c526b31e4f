"""Secrets stored in the database, encrypted (Fernet: AES-128-CBC + HMAC-SHA256).

The key is derived with HKDF from ``FIELD_ENCRYPTION_KEY`` when set, else from
``SECRET_KEY``: rotating the source key makes stored secrets unreadable (they must be set
again), which is the safe failure for a passphrase.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SecretUnreadable(Exception):
    """A stored secret was encrypted under another key (or was tampered with)."""


def _fernet() -> Fernet:
    source = getattr(settings, "FIELD_ENCRYPTION_KEY", "") or settings.SECRET_KEY
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"dossier.field-encryption").derive(
        source.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def secret_encrypt(plain: str) -> str:
    """The token stored for ``plain``."""
    return _fernet().encrypt(plain.encode()).decode()


def secret_decrypt(token: str) -> str:
    """The secret behind a stored token; ``SecretUnreadable`` when the key changed."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("The stored secret cannot be read with the current key; set it again.") from None
