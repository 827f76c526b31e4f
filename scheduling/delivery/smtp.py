"""Sending one message; SMTP answers become transient or permanent errors (RFC 5321)."""

from __future__ import annotations

import smtplib
from typing import Any

from django.core.mail import EmailMessage

from scheduling.delivery.base import PermanentDeliveryError, TransientDeliveryError


def smtp_send(message: EmailMessage) -> None:
    """Send ``message``: 4xx and connection trouble are transient, 5xx permanent."""
    try:
        message.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        _raise_for(code, text)
    except smtplib.SMTPResponseException as exc:
        _raise_for(exc.smtp_code, exc.smtp_error)
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as exc:
        raise TransientDeliveryError(f"Could not reach the mail server: {exc}") from exc


def _raise_for(code: int, text: Any) -> None:
    detail = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    if 400 <= code < 500:
        raise TransientDeliveryError(f"SMTP {code} {detail}")
    raise PermanentDeliveryError(f"SMTP {code} {detail}")
