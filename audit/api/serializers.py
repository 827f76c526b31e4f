from __future__ import annotations

from rest_framework import serializers

from audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditEvent
        fields = [
            "sequence",
            "created_at",
            "actor",
            "action",
            "target_type",
            "target_id",
            "details",
            "ip_address",
            "hash",
        ]
