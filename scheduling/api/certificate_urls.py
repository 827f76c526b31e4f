"""Mounted at /api/v1/orgs/{org}/certificates/ (beside, not under, the schedules)."""

from django.urls import path

from scheduling.api import certificates

urlpatterns = [
    path("", certificates.CertificateListView.as_view(), name="certificate-list"),
    path("<int:pk>/", certificates.CertificateDetailView.as_view(), name="certificate-detail"),
]
