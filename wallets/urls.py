urlpatterns = []

# --- budgets ---
from django.urls import include, path  # noqa: E402

urlpatterns += [path("", include("wallets.budgets.urls"))]
