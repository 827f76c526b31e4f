"""Getting a finished file out: readiness checks, signed links, and the response itself."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.files.storage import FileSystemStorage
from django.http import FileResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.utils import timezone

from audit.services import audit_record
from config.errors import ConflictError, GoneError
from exports.models import ExportJob, ExportStatus
from exports.services import exports_storage

LINK_SALT = "dossier.exports.download-link"
LINK_MAX_AGE = dt.timedelta(days=7)
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "pdf": "application/pdf",
}


def export_check_downloadable(job: ExportJob, *, now: dt.datetime | None = None) -> None:
    """Raise 409 when the file is not ready, 410 when it expired."""
    now = now or timezone.now()
    if job.status == ExportStatus.EXPIRED or (
        job.status == ExportStatus.COMPLETED and job.expires_at is not None and job.expires_at <= now
    ):
        raise GoneError("This export has expired and its file was deleted; run the export again.")
    if job.status != ExportStatus.COMPLETED:
        raise ConflictError(f"This export is {job.status}; the file is ready once it is completed.")


def download_token(job: ExportJob) -> str:
    """A signed token naming the job and its organization, for links in emails."""
    return signing.TimestampSigner(salt=LINK_SALT).sign_object({"job": str(job.pk), "org": job.organization_id})


def download_link(job: ExportJob) -> str:
    """Absolute link built from ``SITE_URL`` (never from a request's Host header)."""
    return f"{settings.SITE_URL}/d/{download_token(job)}/"


def job_from_token(token: str) -> ExportJob:
    """The job a token names: GoneError when the link expired, LookupError when tampered."""
    try:
        data = signing.TimestampSigner(salt=LINK_SALT).unsign_object(token, max_age=LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise GoneError("This download link has expired.") from None
    except signing.BadSignature:
        raise LookupError("bad token") from None
    # The token is not the authorization: the job must still exist in that organization.
    job = (
        ExportJob.objects.select_related("organization")
        .filter(pk=data.get("job"), organization_id=data.get("org"))
        .first()
    )
    if job is None:
        raise LookupError("no such export")
    return job


def export_file_response(
    job: ExportJob, *, actor: Any = None, ip_address: str | None = None, via: str = "api"
) -> HttpResponseBase:
    """Audit the download, then stream the file (or redirect to a short-lived S3 URL)."""
    export_check_downloadable(job)
    audit_record(
        organization_id=job.organization_id,
        action="export.downloaded",
        actor=actor,
        target=job,
        ip_address=ip_address,
        details={"via": via, "file_name": job.file_name, "sha256": job.sha256},
    )
    storage = exports_storage()
    if not isinstance(storage, FileSystemStorage):
        # Object storage (S3 via django-storages): a short-lived presigned URL, so the
        # bytes never pass through the web process.
        url = storage.url(
            job.storage_key,
            parameters={
                "ResponseContentDisposition": f'attachment; filename="{job.file_name}"',
            },
            expire=300,
        )
        return HttpResponseRedirect(url)
    response = FileResponse(
        storage.open(job.storage_key, "rb"),
        as_attachment=True,
        filename=job.file_name,
        content_type=MEDIA_TYPES.get(job.format, "application/octet-stream"),
    )
    response["X-Content-SHA256"] = job.sha256
    return response
