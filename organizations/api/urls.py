from django.urls import path

from organizations.api import views

urlpatterns = [
    path("health/", views.HealthView.as_view(), name="health"),
    path("orgs/", views.OrganizationListView.as_view(), name="org-list"),
    path("orgs/<slug:org>/", views.OrganizationDetailView.as_view(), name="org-detail"),
    path("orgs/<slug:org>/members/", views.MemberListView.as_view(), name="member-list"),
    path("orgs/<slug:org>/members/<str:username>/", views.MemberDetailView.as_view(), name="member-detail"),
    path(
        "orgs/<slug:org>/pseudonym-key/rotate/",
        views.PseudonymKeyRotateView.as_view(),
        name="pseudonym-key-rotate",
    ),
]
