"""Schedule endpoints under /api/v1/orgs/{org}/schedules/."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import client_ip
from organizations.api.permissions import OrgScopedMixin
from scheduling.api.serializers import (
    PreviewRequestSerializer,
    RunRequestSerializer,
    RunSerializer,
    ScheduleSerializer,
)
from scheduling.models import ReportSchedule, ScheduleRun
from scheduling.services import (
    schedule_create,
    schedule_delete,
    schedule_pause,
    schedule_resume,
    schedule_run_now,
    schedule_update,
)
from scheduling.timemath import next_runs, validate_schedule


class _ScheduleMixin(OrgScopedMixin):
    def schedules(self) -> Any:
        return ReportSchedule.objects.filter(organization=self.organization).select_related("owner")

    def get_schedule(self, pk: int) -> ReportSchedule:
        schedule = self.schedules().filter(pk=pk).first()
        if schedule is None:
            raise Http404("No such schedule.")
        return schedule


class ScheduleListView(_ScheduleMixin, generics.GenericAPIView[ReportSchedule]):
    """List the organization's schedules, or create one (officers)."""

    serializer_class = ScheduleSerializer

    @extend_schema(responses=ScheduleSerializer(many=True))
    def get(self, request: Request, org: str) -> Response:
        page = self.paginate_queryset(self.schedules().order_by("name"))
        return self.get_paginated_response(ScheduleSerializer(page, many=True).data)

    @extend_schema(request=ScheduleSerializer, responses={201: ScheduleSerializer})
    def post(self, request: Request, org: str) -> Response:
        body = ScheduleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        schedule = schedule_create(
            organization=self.organization,
            owner=request.user,
            data=ScheduleSerializer.to_model(body.validated_data),
            ip_address=client_ip(request),
        )
        return Response(ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)


class ScheduleDetailView(_ScheduleMixin, APIView):
    """Read, replace, change or delete one schedule."""

    serializer_class = ScheduleSerializer

    def get(self, request: Request, org: str, pk: int) -> Response:
        return Response(ScheduleSerializer(self.get_schedule(pk)).data)

    def _change(self, request: Request, pk: int, partial: bool) -> Response:
        schedule = self.get_schedule(pk)
        body = ScheduleSerializer(data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        schedule = schedule_update(
            schedule=schedule,
            data=ScheduleSerializer.to_model(body.validated_data),
            actor=request.user,
            ip_address=client_ip(request),
        )
        return Response(ScheduleSerializer(schedule).data)

    @extend_schema(request=ScheduleSerializer, responses=ScheduleSerializer)
    def put(self, request: Request, org: str, pk: int) -> Response:
        return self._change(request, pk, partial=False)

    @extend_schema(request=ScheduleSerializer, responses=ScheduleSerializer)
    def patch(self, request: Request, org: str, pk: int) -> Response:
        return self._change(request, pk, partial=True)

    def delete(self, request: Request, org: str, pk: int) -> Response:
        schedule_delete(schedule=self.get_schedule(pk), actor=request.user, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SchedulePauseView(_ScheduleMixin, APIView):
    @extend_schema(request=None, responses=ScheduleSerializer)
    def post(self, request: Request, org: str, pk: int) -> Response:
        schedule = schedule_pause(
            schedule=self.get_schedule(pk),
            actor=request.user,
            reason=f"Paused by {request.user.get_username()}.",
            ip_address=client_ip(request),
        )
        return Response(ScheduleSerializer(schedule).data)


class ScheduleResumeView(_ScheduleMixin, APIView):
    @extend_schema(request=None, responses=ScheduleSerializer)
    def post(self, request: Request, org: str, pk: int) -> Response:
        schedule = schedule_resume(schedule=self.get_schedule(pk), actor=request.user, ip_address=client_ip(request))
        return Response(ScheduleSerializer(schedule).data)


class ScheduleRunView(_ScheduleMixin, APIView):
    """Run now (202); ``{"to_me": true}`` sends a test to the requesting user only."""

    @extend_schema(
        request=RunRequestSerializer,
        responses={202: inline_serializer("RunAccepted", {"run_id": serializers.UUIDField()})},
    )
    def post(self, request: Request, org: str, pk: int) -> Response:
        body = RunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = schedule_run_now(
            schedule=self.get_schedule(pk),
            actor=request.user,
            to_me=body.validated_data["to_me"],
            ip_address=client_ip(request),
        )
        return Response({"run_id": str(run.pk)}, status=status.HTTP_202_ACCEPTED)


class ScheduleRunListView(_ScheduleMixin, generics.ListAPIView[ScheduleRun]):
    """Run history, newest first, with per-recipient deliveries."""

    serializer_class = RunSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        schedule = self.get_schedule(self.kwargs["pk"])
        return schedule.runs.order_by("-scheduled_for", "-created_at").prefetch_related("deliveries")


class SchedulePreviewView(OrgScopedMixin, APIView):
    """The next 5 runs strictly after ``after`` (default now), with the local offset."""

    write_role = "viewer"  # a POST that only reads

    @extend_schema(
        request=PreviewRequestSerializer,
        responses=inline_serializer(
            "SchedulePreview", {"next_runs": serializers.ListField(child=serializers.DateTimeField())}
        ),
    )
    def post(self, request: Request, org: str) -> Response:
        body = PreviewRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        spec = validate_schedule(data["schedule"], data["timezone"])
        runs = next_runs(spec, data["timezone"], data.get("after") or timezone.now(), 5)
        return Response({"next_runs": [r.isoformat() for r in runs]})
