"""URL map: the admin, the API under /api/v1/, its schema and docs."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from exports.api.views import ColumnCatalogView, signed_download
from ops.views import ops_status_view

admin.site.site_header = "Dossier"
admin.site.site_title = "Dossier"
admin.site.index_title = "Compliance exports and reports"

api_v1: list[URLPattern | URLResolver] = [
    path("", include("organizations.api.urls")),
    path("orgs/<slug:org>/audit/", include("audit.api.urls")),
    path("orgs/<slug:org>/tags/", include("tagging.api.urls")),
    path("orgs/<slug:org>/columns/", ColumnCatalogView.as_view(), name="column-catalog"),
    path("orgs/<slug:org>/exports/", include("exports.api.urls")),
    path("orgs/<slug:org>/schedules/", include("scheduling.api.urls")),
    path("orgs/<slug:org>/certificates/", include("scheduling.api.certificate_urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # Staff only (admin_view sends anyone else to the admin's sign-in page).
    path("admin/ops/status/", admin.site.admin_view(ops_status_view), name="ops-status"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("d/<str:token>/", signed_download, name="signed-download"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
