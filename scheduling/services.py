"""Writes for report schedules: validate, create, change, pause, resume, run now."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from config.crypto import secret_encrypt
from config.errors import ApplicationError
from config.tasks import enqueue
from exports.columns_base import IdentityMode
from exports.services import export_definition_validate
from organizations.models import DeliveryPolicy, Organization, Role
from organizations.selectors import identity_access_for, role_for_user
from scheduling.models import DeliveryMethod, Protection, ReportSchedule, RunStatus, RunTrigger, ScheduleRun
from scheduling.timemath import get_zone, next_run, validate_schedule

RUN_TASK = "scheduling.tasks.execute_run"
MAX_RECIPIENTS = 50
_STORAGE_PATH_RE = re.compile(r"^[A-Za-z0-9_\-. ]+(/[A-Za-z0-9_\-. ]+)*$")
FIELDS = (
    "name",
    "description",
    "dataset",
    "format",
    "filters",
    "columns",
    "schedule",
    "timezone",
    "delivery_method",
    "recipients",
    "attach_file",
    "protection",
    "storage_path",
    "skip_if_empty",
    "is_active",
)  # what audit events show of a schedule: never its passphrase
MIN_PASSPHRASE = 12


def _recipients(organization: Organization, method: str, recipients: Any) -> list[str]:
    if method == DeliveryMethod.STORAGE:
        return []
    if not isinstance(recipients, list) or not recipients:
        raise ApplicationError("Email delivery needs at least one recipient.", field="delivery.recipients")
    clean: list[str] = []
    for address in recipients:
        if not isinstance(address, str):
            raise ApplicationError("Recipients must be email addresses.", field="delivery.recipients")
        address = address.strip()
        try:
            validate_email(address)
        except ValidationError:
            raise ApplicationError(f"{address!r} is not a valid email address.", field="delivery.recipients") from None
        if address.lower() not in (a.lower() for a in clean):
            clean.append(address)
    if len(clean) > MAX_RECIPIENTS:
        raise ApplicationError(f"At most {MAX_RECIPIENTS} recipients.", field="delivery.recipients")
    allowed = [d.lower().lstrip("@") for d in organization.allowed_recipient_domains or []]
    if allowed:
        outside = [a for a in clean if a.rsplit("@", 1)[1].lower() not in allowed]
        if outside:
            raise ApplicationError(
                f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} outside the organization's allowed "
                f"recipient domains ({', '.join(allowed)}).",
                field="delivery.recipients",
            )
    return clean


def _storage_path(method: str, path: Any) -> str:
    if method == DeliveryMethod.EMAIL:
        return ""
    path = (path or "").strip().strip("/") if isinstance(path, str) else None
    if not path or ".." in path.split("/") or not _STORAGE_PATH_RE.match(path):
        raise ApplicationError(
            "Storage delivery needs storage_path: a relative folder such as "
            "'reports/board' (letters, digits, '-', '_', '.', no '..').",
            field="delivery.storage_path",
        )
    return path


def schedule_validate(
    *, organization: Organization, data: dict[str, Any], owner: Any = None, has_passphrase: bool = False
) -> dict[str, Any]:
    """Validate a whole schedule definition (flat model fields, with ``passphrase`` in clear
    when one is given); returns the clean values (the passphrase encrypted)."""
    name = (data.get("name") or "").strip()
    if not name:
        raise ApplicationError("A name is needed.", field="name")
    tz = data.get("timezone") or organization.timezone
    get_zone(tz)
    spec = validate_schedule(data.get("schedule") or {}, tz)
    try:
        export_definition_validate(
            dataset=data.get("dataset", "cases"),
            format=data.get("format"),
            filters=data.get("filters"),
            columns=data.get("columns"),
            timezone=tz,
            now=timezone.now(),
        )
    except ApplicationError as exc:
        # A schedule holds its export definition under "export" (as the API body nests it).
        if not exc.field:
            raise
        raise type(exc)(exc.message, field=f"export.{exc.field}", extra=exc.extra) from exc
    method = data.get("delivery_method") or DeliveryMethod.EMAIL
    if method not in DeliveryMethod.values:
        raise ApplicationError(
            f"Unknown delivery method {method!r}: use {', '.join(DeliveryMethod.values)}.", field="delivery.method"
        )
    protection = _protection(organization, data, has_passphrase=has_passphrase)
    reveals = isinstance(data.get("columns"), dict) and data["columns"].get("identity") == IdentityMode.INCLUDE
    # Identities leave in a scheduled file only for a cleared owner, over protected delivery.
    if reveals and (protection == Protection.NONE or not identity_access_for(user=owner, organization=organization)):
        raise ApplicationError(
            "A scheduled report can reveal identities only when its owner has identity access and its "
            "delivery is protected (link_only, encrypted_zip or smime); otherwise use "
            '"identity": "pseudonymise" (the default) or "omit".',
            field="export.columns",
        )
    passphrase = data.get("passphrase")
    return {
        **{k: data[k] for k in FIELDS if k in data},
        "name": name,
        "timezone": tz,
        "schedule": spec,
        "delivery_method": method,
        "filters": data.get("filters") or {},
        "columns": data.get("columns") or {},
        "dataset": data.get("dataset", "cases"),
        "recipients": _recipients(organization, method, data.get("recipients")),
        "storage_path": _storage_path(method, data.get("storage_path")),
        "protection": protection,
        **({"passphrase_encrypted": secret_encrypt(passphrase)} if passphrase else {}),
    }


def _protection(organization: Organization, data: dict[str, Any], *, has_passphrase: bool) -> str:
    """The delivery's protection, allowed by the organization's policy, with the passphrase
    an encrypted ZIP needs (at least 12 characters; kept encrypted, never shown)."""
    protection = data.get("protection") or Protection.NONE
    if protection not in Protection.values:
        raise ApplicationError(
            f"Unknown protection {protection!r}: use {', '.join(Protection.values)}.", field="delivery.protection"
        )
    emailed = data.get("delivery_method") != DeliveryMethod.STORAGE
    if emailed and protection == Protection.NONE and organization.delivery_policy == DeliveryPolicy.PROTECTED:
        raise ApplicationError(
            f"{organization.name} sends reports protected only: choose link_only, encrypted_zip or smime.",
            field="delivery.protection",
        )
    passphrase = data.get("passphrase")
    if passphrase is not None and (not isinstance(passphrase, str) or len(passphrase) < MIN_PASSPHRASE):
        raise ApplicationError(
            f"The passphrase must be at least {MIN_PASSPHRASE} characters.", field="delivery.passphrase"
        )
    if protection == Protection.ENCRYPTED_ZIP and not passphrase and not has_passphrase:
        raise ApplicationError(
            f"An encrypted ZIP needs the passphrase agreed with the recipients (at least {MIN_PASSPHRASE} characters).",
            field="delivery.passphrase",
        )
    return protection


def _snapshot(schedule: ReportSchedule) -> dict[str, Any]:
    return {k: getattr(schedule, k) for k in FIELDS}


@transaction.atomic
def schedule_create(
    *, organization: Organization, owner: Any, data: dict[str, Any], ip_address: str | None = None
) -> ReportSchedule:
    """Create a schedule; ``next_run_at`` is its first slot after now."""
    clean = schedule_validate(organization=organization, data=data, owner=owner)
    schedule = ReportSchedule(organization=organization, owner=owner, **clean)
    schedule.next_run_at = (
        next_run(schedule.schedule, schedule.timezone, timezone.now()) if schedule.is_active else None
    )
    schedule.save()
    audit_record(
        organization_id=organization.pk,
        action="schedule.created",
        actor=owner,
        target=schedule,
        ip_address=ip_address,
        details={"after": _snapshot(schedule)},
    )
    return schedule


@transaction.atomic
def schedule_update(
    *, schedule: ReportSchedule, data: dict[str, Any], actor: Any, ip_address: str | None = None
) -> ReportSchedule:
    """Change a schedule (``data`` may be partial); the next run is recomputed from now."""
    schedule = ReportSchedule.objects.select_for_update().get(pk=schedule.pk)
    before = _snapshot(schedule)
    clean = schedule_validate(
        organization=schedule.organization,
        data={**before, **data},
        owner=schedule.owner,
        has_passphrase=bool(schedule.passphrase_encrypted),
    )
    for key, value in clean.items():
        setattr(schedule, key, value)
    schedule.protection_notice_at = None  # a policy fallback is told again only after a change
    if schedule.is_active:
        schedule.paused_reason = ""
        schedule.next_run_at = next_run(schedule.schedule, schedule.timezone, timezone.now())
    else:
        schedule.next_run_at = None
    schedule.save()
    audit_record(
        organization_id=schedule.organization_id,
        action="schedule.updated",
        actor=actor,
        target=schedule,
        ip_address=ip_address,
        details={"before": before, "after": _snapshot(schedule)},
    )
    return schedule


@transaction.atomic
def schedule_delete(*, schedule: ReportSchedule, actor: Any, ip_address: str | None = None) -> None:
    """Delete a schedule and its run history (the audit log keeps the record)."""
    audit_record(
        organization_id=schedule.organization_id,
        action="schedule.deleted",
        actor=actor,
        target=schedule,
        ip_address=ip_address,
        details={"before": _snapshot(schedule)},
    )
    schedule.delete()


@transaction.atomic
def schedule_pause(
    *, schedule: ReportSchedule, actor: Any = None, reason: str = "", ip_address: str | None = None
) -> ReportSchedule:
    """Stop dispatching this schedule until it is resumed."""
    ReportSchedule.objects.filter(pk=schedule.pk).update(is_active=False, next_run_at=None, paused_reason=reason[:300])
    schedule.refresh_from_db()
    audit_record(
        organization_id=schedule.organization_id,
        action="schedule.paused",
        actor=actor,
        target=schedule,
        ip_address=ip_address,
        details={"reason": reason},
    )
    return schedule


@transaction.atomic
def schedule_resume(*, schedule: ReportSchedule, actor: Any = None, ip_address: str | None = None) -> ReportSchedule:
    """Resume: the next run is the first slot after now (missed slots are not replayed)."""
    ReportSchedule.objects.filter(pk=schedule.pk).update(
        is_active=True,
        paused_reason="",
        consecutive_failures=0,
        next_run_at=next_run(schedule.schedule, schedule.timezone, timezone.now()),
    )
    schedule.refresh_from_db()
    audit_record(
        organization_id=schedule.organization_id,
        action="schedule.resumed",
        actor=actor,
        target=schedule,
        ip_address=ip_address,
        details={"next_run_at": schedule.next_run_at},
    )
    return schedule


@transaction.atomic
def schedule_run_now(
    *, schedule: ReportSchedule, actor: Any, to_me: bool = False, ip_address: str | None = None
) -> ScheduleRun:
    """A manual run now; ``to_me`` sends it to the requesting user only (a test)."""
    recipients = None
    if to_me:
        if not getattr(actor, "email", ""):
            raise ApplicationError("Your user has no email address to send the test to.", field="to_me")
        recipients = [actor.email]
    run = ScheduleRun.objects.create(
        schedule=schedule,
        scheduled_for=timezone.now(),
        trigger=RunTrigger.MANUAL,
        requested_by=actor if getattr(actor, "is_authenticated", False) else None,
        recipients_override=recipients,
    )
    audit_record(
        organization_id=schedule.organization_id,
        action="schedule.run",
        actor=actor,
        target=schedule,
        ip_address=ip_address,
        details={"run": str(run.pk), "trigger": "manual", "test": to_me},
    )
    enqueue(RUN_TASK, str(run.pk), task_name=f"schedule-run-{run.pk}")
    return run


def owner_may_run(schedule: ReportSchedule) -> bool:
    """A schedule runs with its owner's access: an active officer (or admin) of the organization."""
    owner = schedule.owner
    if not owner.is_active:
        return False
    role = role_for_user(user=owner, organization=schedule.organization)
    return role is not None and Role.allows(role, Role.OFFICER)


__all__ = [
    "RunStatus",
    "owner_may_run",
    "schedule_create",
    "schedule_pause",
    "schedule_resume",
    "schedule_run_now",
    "schedule_update",
    "schedule_validate",
]
