"""A copy of the run's file into the exports storage (a folder or an S3 prefix)."""

from __future__ import annotations

from django.core.files import File
from django.utils.text import slugify

from exports.services import exports_storage
from scheduling.delivery.base import Sent, TransientDeliveryError
from scheduling.models import Delivery
from scheduling.timemath import get_zone


def storage_deliver(delivery: Delivery) -> Sent:
    """Store the file under ``<folder>/<org>-<schedule>-<local time>-<run>.<format>``."""
    run, job = delivery.run, delivery.run.export_job
    assert job is not None
    schedule = run.schedule
    local = run.scheduled_for.astimezone(get_zone(schedule.timezone))
    folder = delivery.recipient.removeprefix("storage:")
    name = (
        f"{folder}/{schedule.organization.slug}-{slugify(schedule.name)[:60] or 'report'}-"
        f"{local:%Y-%m-%d_%H%M}-{str(run.pk)[:8]}.{job.format}"
    )
    storage = exports_storage()
    try:
        with storage.open(job.storage_key, "rb") as handle:
            return Sent(key=str(storage.save(name, File(handle, name=name))), attached=False)
    except OSError as exc:
        raise TransientDeliveryError(f"Could not write to storage: {exc}") from exc
