"""Recipient certificate endpoints under /api/v1/orgs/{org}/certificates/ (organization admins)."""

from __future__ import annotations

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import client_ip
from organizations.api.permissions import OrgScopedMixin
from organizations.models import Role
from scheduling.certificates import (
    EXPIRY_WARNING,
    MAX_PEM_CHARS,
    certificate_add,
    certificate_delete,
    certificate_get,
    certificates_for,
)
from scheduling.models import RecipientCertificate


class CertificateSerializer(serializers.ModelSerializer[RecipientCertificate]):
    """A kept certificate: never its PEM, which the recipient already has."""

    valid = serializers.SerializerMethodField(help_text="Usable now: not_before has passed, not_after has not.")
    expires_soon = serializers.SerializerMethodField(
        help_text=f"Expires within {EXPIRY_WARNING.days} days, or already has."
    )

    class Meta:
        model = RecipientCertificate
        fields = ["id", "email", "fingerprint_sha256", "subject", "not_before", "not_after", "valid", "expires_soon"]
        read_only_fields = fields

    def get_valid(self, certificate: RecipientCertificate) -> bool:
        return certificate.not_before <= timezone.now() < certificate.not_after

    def get_expires_soon(self, certificate: RecipientCertificate) -> bool:
        return certificate.not_after <= timezone.now() + EXPIRY_WARNING


class CertificateAddSerializer(serializers.Serializer[None]):
    pem = serializers.CharField(
        max_length=MAX_PEM_CHARS,
        trim_whitespace=False,
        help_text="The recipient's X.509 certificate (-----BEGIN CERTIFICATE-----…): RSA, at least 2048 bits, "
        "with their email address, allowing key encipherment and email protection.",
    )


class _CertificateMixin(OrgScopedMixin):
    read_role = Role.ADMIN
    write_role = Role.ADMIN


class CertificateListView(_CertificateMixin, generics.ListAPIView[RecipientCertificate]):
    """List the organization's recipient certificates (paginated), or add one."""

    serializer_class = CertificateSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return certificates_for(organization=self.organization)

    @extend_schema(request=CertificateAddSerializer, responses={201: CertificateSerializer})
    def post(self, request: Request, org: str) -> Response:
        body = CertificateAddSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        certificate = certificate_add(
            organization=self.organization,
            pem=body.validated_data["pem"],
            actor=request.user,
            ip_address=client_ip(request),
        )
        return Response(CertificateSerializer(certificate).data, status=status.HTTP_201_CREATED)


class CertificateDetailView(_CertificateMixin, APIView):
    """Read or delete one certificate."""

    def get_certificate(self, pk: int) -> RecipientCertificate:
        certificate = certificate_get(organization=self.organization, pk=pk)
        if certificate is None:
            raise Http404("No such certificate.")
        return certificate

    @extend_schema(responses=CertificateSerializer)
    def get(self, request: Request, org: str, pk: int) -> Response:
        return Response(CertificateSerializer(self.get_certificate(pk)).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, org: str, pk: int) -> Response:
        certificate_delete(certificate=self.get_certificate(pk), actor=request.user, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
