from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("v1/", include("wallets.urls")),
    path("v1/", include("reports.urls")),
    path("v1/", include("gateway.urls")),
    path("v1/", include("chargeback.api_urls")),  # config, provider secrets
    path(
        "api/schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="schema",
    ),
    path(
        "api/docs/",
        SpectacularRedocView.as_view(
            url_name="schema", authentication_classes=[], permission_classes=[]
        ),
        name="api-docs",
    ),
    path("", include("reports.dashboard_urls")),
]
