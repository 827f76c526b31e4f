"""What every delivery channel returns or raises."""

from __future__ import annotations

from dataclasses import dataclass


class TransientDeliveryError(Exception):
    """Worth retrying later (SMTP 4xx, connection refused or dropped, timeout, storage busy)."""


class PermanentDeliveryError(Exception):
    """Will not work on retry (SMTP 5xx, no certificate for the recipient, no passphrase)."""


@dataclass(frozen=True, slots=True)
class Sent:
    """Proof of one delivery: the Message-ID (or stored key), whether a file was attached,
    the protection used, and the SHA-256 of exactly the bytes attached ("" when none)."""

    key: str
    attached: bool
    protection: str = ""
    sha256: str = ""
