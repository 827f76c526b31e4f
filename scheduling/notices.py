"""Messages to a schedule's owner: a run that failed or partly failed, a schedule that
paused itself, a policy or access change that altered what its reports contain."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.utils import timezone

from scheduling.models import ReportSchedule, ScheduleRun

logger = logging.getLogger(__name__)


def _send_to_owner(schedule: ReportSchedule, subject: str, body: str) -> None:
    owner = schedule.owner
    if not owner.email:
        return
    try:
        EmailMultiAlternatives(
            subject=subject,
            body=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[owner.email],
            connection=get_connection(timeout=settings.EMAIL_TIMEOUT),
        ).send()
    except Exception:
        logger.exception("could not send %r to the owner of schedule %s", subject, schedule.pk)


def run_notice(run: ScheduleRun, schedule: ReportSchedule, *, paused: bool = False) -> None:
    """One notice per run that did not succeed (and one when the schedule pauses itself)."""
    if not paused and not ScheduleRun.objects.filter(pk=run.pk, owner_notified_at__isnull=True).update(
        owner_notified_at=timezone.now()
    ):
        return
    run.refresh_from_db()
    context = {
        "schedule": schedule,
        "run": run,
        "paused": paused,
        "site_url": settings.SITE_URL,
        "deliveries": list(run.deliveries.all()),
    }
    subject = f"Paused: {schedule.name}" if paused else f"Report {run.status}: {schedule.name}"
    _send_to_owner(schedule, subject, render_to_string("scheduling/email/owner_notice.txt", context))


def identity_fallback_notice(schedule: ReportSchedule) -> None:
    """The owner lost identity access: the schedule now sends pseudonyms."""
    _send_to_owner(
        schedule,
        f"Pseudonyms from now on: {schedule.name}",
        f"You no longer have identity access in {schedule.organization.name}, so the scheduled report "
        f'"{schedule.name}" now shows the people in its cases as pseudonyms (PSN-…) instead of their names '
        "and contact details. An organization admin can restore your access; you can then choose to reveal "
        f"identities again.\n\n{settings.SITE_URL}/admin/\n",
    )


def protection_fallback_notice(schedule: ReportSchedule) -> None:
    """The organization requires protected delivery: an unprotected schedule goes as links."""
    _send_to_owner(
        schedule,
        f"Sent as a link only: {schedule.name}",
        f"{schedule.organization.name} now sends scheduled reports as protected deliveries only. Your "
        f'schedule "{schedule.name}" has no protection, so its emails carry the download link and no file '
        "until you choose link only, an encrypted ZIP or S/MIME for it.\n\n"
        f"{settings.SITE_URL}/admin/scheduling/reportschedule/{schedule.pk}/change/\n",
    )
