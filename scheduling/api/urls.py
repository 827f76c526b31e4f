from django.urls import path

from scheduling.api import views

urlpatterns = [
    path("", views.ScheduleListView.as_view(), name="schedule-list"),
    path("preview/", views.SchedulePreviewView.as_view(), name="schedule-preview"),
    path("<int:pk>/", views.ScheduleDetailView.as_view(), name="schedule-detail"),
    path("<int:pk>/pause/", views.SchedulePauseView.as_view(), name="schedule-pause"),
    path("<int:pk>/resume/", views.ScheduleResumeView.as_view(), name="schedule-resume"),
    path("<int:pk>/run/", views.ScheduleRunView.as_view(), name="schedule-run"),
    path("<int:pk>/runs/", views.ScheduleRunListView.as_view(), name="schedule-runs"),
]
