"""Recipient certificates in the admin: organization admins paste a PEM (checked by the same
rules as the API), see each certificate's address, fingerprint and expiry, and delete it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from audit.services import client_ip
from config.errors import ApplicationError
from organizations.admin_scoping import OrgScopedAdmin, org_ids_for
from organizations.models import Role
from scheduling.certificates import EXPIRY_WARNING, certificate_add, certificate_delete, certificate_validate
from scheduling.models import RecipientCertificate

_RED, _GREEN, _GREY = "#dc3545", "#198754", "#6c757d"
_DETAIL_FIELDS = [
    "organization",
    "email",
    "validity",
    "not_before",
    "not_after",
    "fingerprint_sha256",
    "subject",
    "created_by",
    "created_at",
    "expiry_notified_at",
    "pem_display",
]


def _badge(colour: str, text: str) -> str:
    return format_html(
        '<span class="certificate-badge" style="background:{};color:#fff;padding:2px 8px;'
        'border-radius:10px;white-space:nowrap">{}</span>',
        colour,
        text,
    )


class CertificateAddForm(forms.ModelForm):  # type: ignore[type-arg]
    """Organization and PEM in; ``certificate_validate`` decides, its errors shown on ``pem``."""

    class Meta:
        model = RecipientCertificate
        fields = ["organization", "pem"]
        widgets = {
            "pem": forms.Textarea(
                attrs={
                    "rows": 14,
                    "cols": 70,
                    "spellcheck": "false",
                    "style": "font-family:monospace",
                    "placeholder": "-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----",
                }
            )
        }
        labels = {"pem": "Certificate (PEM)"}
        help_texts = {
            "pem": "The recipient's own X.509 certificate, as they sent it: RSA (2048 bits or more), naming "
            "their email address, allowing key encipherment and email protection. Never a private key."
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        organization, pem = cleaned.get("organization"), cleaned.get("pem")
        if organization is not None and pem:
            try:
                self.parsed = certificate_validate(organization=organization, pem=pem)
            except ApplicationError as exc:
                self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return cleaned


@admin.register(RecipientCertificate)
class RecipientCertificateAdmin(OrgScopedAdmin):
    """Certificates of the organizations where the user is an admin: add, view, delete; never edit."""

    form = CertificateAddForm
    empty_hint = "No recipient certificates. Add a recipient's certificate to send them S/MIME-encrypted reports."
    view_role = Role.ADMIN
    write_role = Role.ADMIN
    delete_role = Role.ADMIN
    list_display = ["email", "organization", "fingerprint", "not_after", "validity", "created_by"]
    list_filter = ["organization"]
    list_select_related = ["organization", "created_by"]
    search_fields = ["email", "fingerprint_sha256", "subject"]
    ordering = ["organization__name", "email", "-not_after"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a certificate is replaced, not edited

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["organization", "pem"] if obj is None else _DETAIL_FIELDS

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [] if obj is None else _DETAIL_FIELDS

    def get_list_display(self, request: HttpRequest) -> Any:
        ids = org_ids_for(request, self.view_role)
        single = ids is not None and len(ids) == 1
        return [name for name in self.list_display if not (single and name == "organization")]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        ids = org_ids_for(request, self.write_role)
        if "organization" not in initial and ids and len(ids) == 1:
            initial["organization"] = str(next(iter(ids)))
        return initial

    # --- columns ----------------------------------------------------------------------------

    @admin.display(description="Fingerprint (SHA-256)", ordering="fingerprint_sha256")
    def fingerprint(self, certificate: RecipientCertificate) -> str:
        value = certificate.fingerprint_sha256
        return format_html('<code title="{}">{}…{}</code>', value, value[:12], value[-4:])

    @admin.display(description="Validity", ordering="not_after")
    def validity(self, certificate: RecipientCertificate) -> str:
        now = timezone.now()
        if certificate.not_after <= now:
            return _badge(_RED, "expired")
        if certificate.not_before > now:
            return _badge(_GREY, "not yet valid")
        if certificate.not_after <= now + EXPIRY_WARNING:
            days = -(-(certificate.not_after - now) // dt.timedelta(days=1))  # whole days left, rounded up
            return _badge(_RED, f"expires soon ({days} day{'' if days == 1 else 's'})")
        return _badge(_GREEN, "valid")

    @admin.display(description="Certificate (PEM)")
    def pem_display(self, certificate: RecipientCertificate) -> str:
        return format_html('<pre style="font-size:11px;margin:0">{}</pre>', certificate.pem)

    # --- saving and deleting go through the services ---------------------------------------

    def save_model(self, request: HttpRequest, obj: RecipientCertificate, form: Any, change: bool) -> None:
        """Add through the service, so the admin validates and audits like the API."""
        saved = certificate_add(
            organization=form.cleaned_data["organization"],
            pem=form.cleaned_data["pem"],
            actor=request.user,
            ip_address=client_ip(request),
        )
        for field in RecipientCertificate._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: RecipientCertificate) -> None:
        certificate_delete(certificate=obj, actor=request.user, ip_address=client_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[RecipientCertificate]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)
