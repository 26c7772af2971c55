from django.urls import path

from alert_channels.apis import (
    WebhookDetailApi,
    WebhookListCreateApi,
    WebhookRotateSecretApi,
    WebhookTestApi,
)

urlpatterns = [
    path("webhooks", WebhookListCreateApi.as_view(), name="webhook-list"),
    path("webhooks/<int:webhook_id>", WebhookDetailApi.as_view(), name="webhook-detail"),
    path("webhooks/<int:webhook_id>/test", WebhookTestApi.as_view(), name="webhook-test"),
    path(
        "webhooks/<int:webhook_id>/rotate-secret",
        WebhookRotateSecretApi.as_view(),
        name="webhook-rotate-secret",
    ),
]
