from django.urls import path

from organizations.api import views

urlpatterns = [
    path("health/", views.HealthView.as_view(), name="health"),
    path("orgs/", views.OrganizationListView.as_view(), name="org-list"),
    path("orgs/<slug:org>/", views.OrganizationDetailView.as_view(), name="org-detail"),
]
