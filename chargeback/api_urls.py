from django.urls import path

from chargeback.apis import ConfigApplyApi, ConfigValidateApi
from chargeback.apis_secrets import ProviderSecretDetailApi, ProviderSecretListApi

urlpatterns = [
    path("config/validate", ConfigValidateApi.as_view(), name="config-validate"),
    path("config/apply", ConfigApplyApi.as_view(), name="config-apply"),
    path("provider-secrets", ProviderSecretListApi.as_view(), name="provider-secrets"),
    path(
        "provider-secrets/<str:name>",
        ProviderSecretDetailApi.as_view(),
        name="provider-secrets-detail",
    ),
]
