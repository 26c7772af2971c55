from django.urls import path

from gateway import views
from gateway.apis_rates import ExchangeRateListApi

urlpatterns = [
    path("chat/completions", views.chat_completions, name="gateway-chat"),
    path("embeddings", views.embeddings, name="gateway-embeddings"),
    path("messages", views.messages, name="gateway-messages"),
    path("models", views.models, name="gateway-models"),
    path("models/<path:model_id>", views.models, name="gateway-model"),
    path("admin/exchange-rates", ExchangeRateListApi.as_view(), name="exchange-rates"),
]
