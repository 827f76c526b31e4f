"""Tag slot endpoints under /api/v1/orgs/{org}/tags/."""

from __future__ import annotations

from dataclasses import asdict

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import client_ip
from organizations.api.permissions import OrgScopedMixin
from organizations.models import Role
from organizations.selectors import identity_access_for
from tagging.api.serializers import (
    SLOT_RANGE_MESSAGE,
    DiscoveredFieldSerializer,
    TagPreviewRequestSerializer,
    TagPreviewSerializer,
    TagSlotSerializer,
)
from tagging.models import MAX_SLOTS, SourceEntity, TagSlot
from tagging.selectors import tag_fields_discover, tag_preview, tag_slots_for
from tagging.services import tag_slot_clear, tag_slot_patch, tag_slot_put


class TagSlotListView(OrgScopedMixin, generics.ListAPIView[TagSlot]):
    """The organization's configured slots, in slot order."""

    serializer_class = TagSlotSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return tag_slots_for(organization=self.organization)


class TagSlotDetailView(OrgScopedMixin, APIView):
    """Read, create or replace (PUT), change (PATCH) or clear (DELETE) slot 1..20."""

    write_role = Role.ADMIN
    serializer_class = TagSlotSerializer

    def _slot(self, slot: int) -> int:
        if not 1 <= slot <= MAX_SLOTS:
            raise serializers.ValidationError({"slot": [SLOT_RANGE_MESSAGE]})
        return slot

    def _existing(self, slot: int) -> TagSlot:
        tag = TagSlot.objects.filter(organization=self.organization, slot=self._slot(slot)).first()
        if tag is None:
            raise Http404(f"Slot {slot} is not configured.")
        return tag

    @extend_schema(responses=TagSlotSerializer)
    def get(self, request: Request, org: str, slot: int) -> Response:
        return Response(TagSlotSerializer(self._existing(slot)).data)

    @extend_schema(request=TagSlotSerializer, responses={200: TagSlotSerializer, 201: TagSlotSerializer})
    def put(self, request: Request, org: str, slot: int) -> Response:
        self._slot(slot)
        serializer = TagSlotSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tag, created = tag_slot_put(
            organization=self.organization,
            slot=slot,
            data=serializer.validated_data,
            actor=request.user,
            ip_address=client_ip(request),
        )
        return Response(TagSlotSerializer(tag).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=TagSlotSerializer, responses=TagSlotSerializer)
    def patch(self, request: Request, org: str, slot: int) -> Response:
        tag = self._existing(slot)
        serializer = TagSlotSerializer(tag, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        tag = tag_slot_patch(tag=tag, data=serializer.validated_data, actor=request.user, ip_address=client_ip(request))
        return Response(TagSlotSerializer(tag).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, org: str, slot: int) -> Response:
        tag_slot_clear(tag=self._existing(slot), actor=request.user, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TagPreviewView(OrgScopedMixin, APIView):
    """Values a path would give on real recent cases, and its coverage (any member); identity
    values are pseudonyms for members without identity access."""

    write_role = Role.VIEWER  # a POST that reads

    @extend_schema(request=TagPreviewRequestSerializer, responses=TagPreviewSerializer)
    def post(self, request: Request, org: str) -> Response:
        serializer = TagPreviewRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reveal = identity_access_for(user=request.user, organization=self.organization)
        preview = tag_preview(organization=self.organization, reveal=reveal, **serializer.validated_data)
        return Response(asdict(preview))


class TagFieldDiscoveryView(OrgScopedMixin, APIView):
    """Field paths that exist in this organization's data, with coverage and an example (a
    pseudonym for identity paths, unless the member has identity access)."""

    @extend_schema(
        parameters=[OpenApiParameter("source_entity", enum=SourceEntity.values, default="case")],
        responses=DiscoveredFieldSerializer(many=True),
    )
    def get(self, request: Request, org: str) -> Response:
        entity = request.query_params.get("source_entity", SourceEntity.CASE)
        if entity not in SourceEntity.values:
            raise serializers.ValidationError(
                {"source_entity": [f"Unknown source entity {entity!r}: use case, riu or investigation."]}
            )
        reveal = identity_access_for(user=request.user, organization=self.organization)
        fields = tag_fields_discover(organization=self.organization, source_entity=entity, reveal=reveal)
        return Response({"source_entity": entity, "fields": [asdict(f) for f in fields]})
