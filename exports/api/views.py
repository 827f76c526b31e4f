"""Export endpoints under /api/v1/orgs/{org}/ and the signed download link /d/{token}/."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import client_ip
from config.errors import ApplicationError
from exports.api.serializers import ColumnSerializer, ExportJobCreateSerializer, ExportJobSerializer
from exports.columns import catalog_for, columns_resolve
from exports.columns_base import IdentityMode
from exports.downloads import (
    SignInRequired,
    export_file_response,
    job_from_token,
    link_access_check,
    link_sign_in_redirect,
)
from exports.models import Dataset, ExportJob, ExportSource, ExportStatus
from exports.services import export_job_cancel, export_job_create
from organizations.api.permissions import OrgScopedMixin
from tagging.selectors import tag_slots_for


class ColumnCatalogView(OrgScopedMixin, APIView):
    """The columns a file of this dataset has now: core, investigation groups, tags."""

    @extend_schema(
        parameters=[
            OpenApiParameter("dataset", enum=[Dataset.CASES, Dataset.INVESTIGATIONS], default="cases"),
            OpenApiParameter("max_investigations", int, default=3),
        ],
        responses=ColumnSerializer(many=True),
    )
    def get(self, request: Request, org: str) -> Response:
        dataset = request.query_params.get("dataset", Dataset.CASES)
        if dataset not in (Dataset.CASES, Dataset.INVESTIGATIONS):
            raise serializers.ValidationError({"dataset": ["Use cases or investigations."]})
        raw: dict[str, Any] = {"include_overflow": True}
        if "max_investigations" in request.query_params:
            try:
                raw["max_investigations"] = int(request.query_params["max_investigations"])
            except ValueError:
                raise serializers.ValidationError({"max_investigations": ["A whole number from 0 to 10."]}) from None
        # Every column a file can have, identity ones included (``sensitivity`` marks them:
        # pseudonymised unless an export reveals them, gone when it omits them).
        options = {**columns_resolve(raw), "identity": IdentityMode.INCLUDE}
        snapshot = [t.snapshot() for t in tag_slots_for(organization=self.organization, active_only=True)]
        columns = catalog_for(dataset=dataset, options=options, snapshot=snapshot)
        return Response(
            [
                {
                    "key": c.key,
                    "label": c.label,
                    "type": str(c.type),
                    "group": str(c.group),
                    "sensitivity": str(c.sensitivity),
                }
                for c in columns
            ]
        )


class ExportJobListView(OrgScopedMixin, generics.ListCreateAPIView[ExportJob]):
    """List the organization's exports (``?status=``) or ask for a new one (202)."""

    serializer_class = ExportJobSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        jobs = ExportJob.objects.filter(organization=self.organization).select_related("organization", "requested_by")
        if wanted := self.request.query_params.get("status"):
            if wanted not in ExportStatus.values:
                raise serializers.ValidationError({"status": [f"Use one of {', '.join(ExportStatus.values)}."]})
            jobs = jobs.filter(status=wanted)
        return jobs.order_by("-created_at")

    @extend_schema(request=ExportJobCreateSerializer, responses={202: ExportJobSerializer})
    def post(self, request: Request, org: str) -> Response:
        body = ExportJobCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = export_job_create(
            organization=self.organization,
            requested_by=request.user,
            source=ExportSource.API,
            ip_address=client_ip(request),
            **body.validated_data,
        )
        job.refresh_from_db()
        return Response(ExportJobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class ExportJobDetailView(OrgScopedMixin, generics.RetrieveAPIView[ExportJob]):
    """One export's status body."""

    serializer_class = ExportJobSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return ExportJob.objects.filter(organization=self.organization).select_related("organization", "requested_by")


class ExportJobCancelView(OrgScopedMixin, APIView):
    """Cancel a pending or processing export; 409 when it already finished."""

    @extend_schema(request=None, responses={200: ExportJobSerializer, 409: OpenApiResponse(description="finished")})
    def post(self, request: Request, org: str, pk: str) -> Response:
        job = _job(self.organization, pk)
        job = export_job_cancel(job=job, actor=request.user, ip_address=client_ip(request))
        return Response(ExportJobSerializer(job, context={"request": request}).data)


class ExportJobDownloadView(OrgScopedMixin, APIView):
    """The file as an attachment; 409 not ready, 410 expired."""

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(description="the file"),
            409: OpenApiResponse(description="not ready"),
            410: OpenApiResponse(description="expired"),
        }
    )
    def get(self, request: Request, org: str, pk: str) -> HttpResponseBase:
        return export_file_response(_job(self.organization, pk), actor=request.user, ip_address=client_ip(request))


def _job(organization: Any, pk: str) -> ExportJob:
    job = ExportJob.objects.select_related("organization").filter(organization=organization, pk=pk).first()
    if job is None:
        raise Http404("No such export.")
    return job


@never_cache  # members-only files must not be served from a shared cache
def signed_download(request: HttpRequest, token: str) -> HttpResponseBase:
    """``/d/<token>/``: the link sent in emails. 410 expired, 404 tampered or unknown; for an
    organization serving links to members only, a redirect to sign in for an anonymous
    visitor and 404 for a signed-in non-member (the token is checked first)."""
    try:
        job = job_from_token(token)
        link_access_check(job, user=request.user)
        return export_file_response(
            job,
            actor=request.user if request.user.is_authenticated else "link",
            ip_address=client_ip(request),
            via="link",
        )
    except SignInRequired:
        return link_sign_in_redirect(request.get_full_path())
    except LookupError:
        raise Http404("This download link is not valid.") from None
    except ApplicationError as exc:
        return JsonResponse({"detail": exc.message}, status=exc.status_code)
