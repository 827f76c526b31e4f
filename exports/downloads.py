"""Getting a finished file out: readiness checks, signed links, and the response itself."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import global_settings, settings
from django.contrib.auth.views import redirect_to_login
from django.core import signing
from django.core.files.storage import FileSystemStorage
from django.http import FileResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils import timezone

from audit.services import audit_record
from config.errors import ConflictError, GoneError
from exports.models import ExportJob, ExportStatus
from exports.services import exports_storage
from organizations.models import LinkAccess, Organization
from organizations.selectors import role_for_user

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


class SignInRequired(Exception):
    """The link serves members only and the visitor has not signed in."""


def link_requires_sign_in(organization: Organization) -> bool:
    """Whether the organization's download links serve only its signed-in members (so an
    email can say that a sign-in is needed)."""
    return organization.link_access == LinkAccess.MEMBERS_ONLY


def link_access_check(job: ExportJob, *, user: Any) -> None:
    """Who may follow a valid link to ``job``: anyone, unless the organization serves links to
    members only; then SignInRequired for an anonymous visitor and LookupError (a 404, so the
    export's existence is not revealed) for a signed-in user who is not a member.

    Call it after ``job_from_token``: a tampered or expired link is refused as such before
    anyone is asked to sign in for it. Superusers count as members of every organization.
    """
    if not link_requires_sign_in(job.organization):
        return
    if not getattr(user, "is_authenticated", False):
        raise SignInRequired
    if role_for_user(user=user, organization=job.organization) is None:
        raise LookupError("not a member of the export's organization")


def link_sign_in_redirect(next_path: str) -> HttpResponseRedirect:
    """Send the visitor to sign in (``LOGIN_URL`` when configured, else the admin's login page)
    and back to ``next_path`` afterwards."""
    # Django's default LOGIN_URL (/accounts/login/) has no view here: the admin signs people in.
    configured = str(settings.LOGIN_URL)
    login_url = configured if configured != global_settings.LOGIN_URL else reverse("admin:login")
    return redirect_to_login(next_path, login_url=login_url)


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
