"""The only way to write the audit log."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from audit.models import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64
SYSTEM_ACTOR = "system"


def canonical_json(event: AuditEvent) -> str:
    """The event's content as canonical JSON (sorted keys, no spaces, UTC timestamps)."""
    payload = {
        "organization": event.organization_id,
        "sequence": event.sequence,
        "actor": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "details": event.details,
        "ip_address": event.ip_address,
        "created_at": event.created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(*, prev_hash: str, event: AuditEvent) -> str:
    """SHA-256 of the previous hash followed by the event's canonical JSON."""
    return hashlib.sha256((prev_hash + canonical_json(event)).encode()).hexdigest()


def _normalise(details: dict[str, Any] | None) -> dict[str, Any]:
    # Store exactly what was hashed: Decimals, dates and UUIDs become their JSON text now.
    return json.loads(json.dumps(details or {}, cls=DjangoJSONEncoder))


def audit_record(
    *,
    organization_id: int,
    action: str,
    actor: Any = None,
    target: Any = None,
    target_type: str = "",
    target_id: str | int = "",
    details: dict[str, Any] | None = None,
    ip_address: str | None = None,
) -> AuditEvent:
    """Append an event to the organization's chain, inside the caller's transaction.

    The chain head row is locked first (SELECT … FOR UPDATE on PostgreSQL; SQLite
    serialises writers itself), so concurrent writers of one organization queue up and the
    chain stays linear; the unique (organization, sequence) constraint backs this up.
    """
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
    with transaction.atomic():
        AuditChainHead.objects.get_or_create(organization_id=organization_id)
        head = AuditChainHead.objects.select_for_update().get(organization_id=organization_id)
        is_user = actor is not None and getattr(actor, "is_authenticated", False)
        event = AuditEvent(
            organization_id=organization_id,
            sequence=head.sequence + 1,
            actor=actor if is_user else None,
            actor_label=actor.get_username() if is_user else (actor if isinstance(actor, str) else SYSTEM_ACTOR),
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            details=_normalise(details),
            ip_address=ip_address,
            created_at=timezone.now(),
            prev_hash=head.hash,
        )
        event.hash = event_hash(prev_hash=head.hash, event=event)
        event.save(force_insert=True)
        head.sequence, head.hash = event.sequence, event.hash
        head.save(update_fields=["sequence", "hash"])
    return event


def client_ip(request: Any) -> str | None:
    """The client's address as the server saw it (no proxy headers are trusted)."""
    return request.META.get("REMOTE_ADDR") if request is not None else None
