"""API bodies for organizations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from organizations.models import DeliveryPolicy, LinkAccess, Membership, Organization, Role


class OrganizationMembershipSerializer(serializers.ModelSerializer[Membership]):
    slug = serializers.CharField(source="organization.slug")
    name = serializers.CharField(source="organization.name")
    timezone = serializers.CharField(source="organization.timezone")

    class Meta:
        model = Membership
        fields = ["slug", "name", "timezone", "role"]


DELIVERY_POLICY_HELP = str(Organization._meta.get_field("delivery_policy").help_text)
LINK_ACCESS_HELP = str(Organization._meta.get_field("link_access").help_text)


class OrganizationDetailSerializer(serializers.Serializer[object]):
    slug = serializers.CharField()
    name = serializers.CharField()
    timezone = serializers.CharField()
    allowed_recipient_domains = serializers.ListField(child=serializers.CharField())
    delivery_policy = serializers.ChoiceField(choices=DeliveryPolicy.choices, help_text=DELIVERY_POLICY_HELP)
    link_access = serializers.ChoiceField(choices=LinkAccess.choices, help_text=LINK_ACCESS_HELP)
    role = serializers.CharField(help_text="The caller's role in the organization.")


class StrictKeysSerializer(serializers.Serializer[Any]):
    """A change body that refuses keys it does not know (a typo must not look like success).

    Keys of the read body that cannot be changed (``read_only_keys``) are refused with a
    message saying so.
    """

    read_only_keys: tuple[str, ...] = ()

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            writable = [name for name, field in self.fields.items() if not field.read_only]
            errors = {
                key: [
                    "This field is read-only."
                    if key in self.read_only_keys
                    else f"Unknown field: use {', '.join(writable)}."
                ]
                for key in data
                if key not in writable
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false`` only: a permission is not granted by ``"yes"`` or ``1``."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class OrganizationUpdateSerializer(StrictKeysSerializer):
    """``PATCH /orgs/{org}/``: the settings an admin may change."""

    read_only_keys = ("slug", "name", "role")

    timezone = serializers.CharField(required=False, help_text="IANA zone name, e.g. Europe/London.")
    allowed_recipient_domains = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text='Email domains scheduled reports may be sent to, e.g. ["acme.com"]; empty allows any.',
    )
    delivery_policy = serializers.ChoiceField(
        choices=DeliveryPolicy.choices, required=False, help_text=DELIVERY_POLICY_HELP
    )
    link_access = serializers.ChoiceField(choices=LinkAccess.choices, required=False, help_text=LINK_ACCESS_HELP)


class MemberSerializer(serializers.ModelSerializer[Membership]):
    """``{username, email, role, identity_access}``."""

    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.CharField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "email", "role", "identity_access"]
        read_only_fields = fields


class MemberUpdateSerializer(StrictKeysSerializer):
    """``PATCH /orgs/{org}/members/{username}/``: role and/or identity access."""

    read_only_keys = ("username", "email")

    role = serializers.ChoiceField(choices=Role.choices, required=False)
    identity_access = StrictBooleanField(
        required=False, help_text="May see and export the identities of people in cases."
    )
