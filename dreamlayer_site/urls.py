from csp.decorators import csp_update
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularSwaggerSplitView

from inpainting import views
from inpainting.api.schema_view import CachedSchemaView

urlpatterns = [
    path("", views.home, name="home"),
    # Browsers ask for /favicon.ico where a page names no icon (the API's JSON, Swagger UI).
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("favicon.svg")), name="favicon"),
    path("history/", views.history, name="history"),
    path("usage/", views.usage_page, name="usage"),
    path("history/<uuid:generation_id>/", views.history_detail, name="history-detail"),
    path("history/<uuid:generation_id>/rerun/", views.history_rerun, name="history-rerun"),
    path("history/<uuid:generation_id>/upscale/", views.history_upscale, name="history-upscale"),
    path("history/<uuid:generation_id>/delete/", views.history_delete, name="history-delete"),
    path("metrics", views.metrics, name="metrics"),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", CachedSchemaView.as_view(), name="schema"),
    # Swagger UI (served locally by the sidecar) styles its widgets inline.
    path(
        "api/docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(
            SpectacularSwaggerSplitView.as_view(url_name="schema")
        ),
        name="api-docs",
    ),
    path("", include("inpainting.api.compat.urls")),
    path("api/", include("inpainting.api.urls")),
]

handler404 = "inpainting.views.not_found"
handler500 = "inpainting.views.server_error"
