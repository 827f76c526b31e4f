from django.urls import path

from tagging.api import views

urlpatterns = [
    path("", views.TagSlotListView.as_view(), name="tag-list"),
    path("preview/", views.TagPreviewView.as_view(), name="tag-preview"),
    path("fields/", views.TagFieldDiscoveryView.as_view(), name="tag-fields"),
    path("<int:slot>/", views.TagSlotDetailView.as_view(), name="tag-detail"),
]
