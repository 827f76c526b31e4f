from django.urls import path

from exports.api import views

urlpatterns = [
    path("", views.ExportJobListView.as_view(), name="export-list"),
    path("<uuid:pk>/", views.ExportJobDetailView.as_view(), name="export-detail"),
    path("<uuid:pk>/cancel/", views.ExportJobCancelView.as_view(), name="export-cancel"),
    path("<uuid:pk>/download/", views.ExportJobDownloadView.as_view(), name="export-download"),
]
