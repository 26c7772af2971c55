from django.urls import path

from chargeback.apis import ConfigApplyApi, ConfigValidateApi

urlpatterns = [
    path("config/validate", ConfigValidateApi.as_view(), name="config-validate"),
    path("config/apply", ConfigApplyApi.as_view(), name="config-apply"),
]
