from django.urls import path

from audit.api import views

urlpatterns = [path("", views.AuditEventListView.as_view(), name="audit-list")]
