"""API bodies for organizations."""

from __future__ import annotations

from rest_framework import serializers

from organizations.models import Membership


class OrganizationMembershipSerializer(serializers.ModelSerializer[Membership]):
    slug = serializers.CharField(source="organization.slug")
    name = serializers.CharField(source="organization.name")
    timezone = serializers.CharField(source="organization.timezone")

    class Meta:
        model = Membership
        fields = ["slug", "name", "timezone", "role"]


class OrganizationDetailSerializer(serializers.Serializer[object]):
    slug = serializers.CharField()
    name = serializers.CharField()
    timezone = serializers.CharField()
    role = serializers.CharField()
