from django.contrib import admin
from django.urls import include, path

from gateway.wallet_balance import WalletBalanceApi
from portal.api_docs import DocsView, SchemaView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Before wallets/<team_id>; in the gateway, which reads consumer-group keys.
    path("v1/wallets/balance", WalletBalanceApi.as_view(), name="wallets-balance"),
    path("v1/", include("wallets.urls")),
    path("v1/", include("budgets.urls")),
    path("v1/", include("alert_channels.urls")),
    path("v1/", include("reports.urls")),
    path("v1/", include("gateway.urls")),
    path("v1/", include("chargeback.api_urls")),  # config, provider secrets
    path("sso/", include("sso.urls")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", DocsView.as_view(url_name="schema"), name="api-docs"),
    path("", include("reports.dashboard_urls")),
]
