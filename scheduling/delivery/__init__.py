"""Delivering a run's report: small parts a run's lifecycle (``scheduling.runner``) calls.

- ``email``: one message per recipient, composed from templates, protected as the schedule
  (and its organization's policy) asks, sent through Django's mail backend;
- ``storage``: a copy of the file into the exports storage;
- ``protection``: the transforms — an AES-256 encrypted ZIP, an S/MIME envelope;
- ``smtp``: SMTP answers mapped to transient (retry) or permanent (fail) errors.

Each channel returns a ``Sent`` record — what proves what left: the message id or stored
key, whether a file was attached, the protection used, the SHA-256 of exactly the bytes
attached — or raises ``TransientDeliveryError`` / ``PermanentDeliveryError``.
"""

from __future__ import annotations

from collections.abc import Callable

from scheduling.delivery.base import PermanentDeliveryError, Sent, TransientDeliveryError
from scheduling.delivery.email import email_deliver
from scheduling.delivery.storage import storage_deliver
from scheduling.models import Delivery, DeliveryKind

CHANNELS: dict[str, Callable[[Delivery], Sent]] = {
    DeliveryKind.EMAIL: email_deliver,
    DeliveryKind.STORAGE: storage_deliver,
}


def delivery_send(delivery: Delivery) -> Sent:
    """Deliver one recipient's (or storage target's) copy through its channel."""
    return CHANNELS[delivery.kind](delivery)


__all__ = ["PermanentDeliveryError", "Sent", "TransientDeliveryError", "delivery_send"]
