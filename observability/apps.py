import os

from django.apps import AppConfig
from django.conf import settings


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = "Operations: probes, metrics, traces"

    def ready(self):
        if settings.KT_METRICS_ENABLED:
            from gateway.hooks import on_call_recorded
            from observability import celery_metrics, metrics
            from wallets.tickets.events import on_ticket_event

            on_call_recorded(metrics.call_recorded)
            on_ticket_event(metrics.ticket_event)
            celery_metrics.connect()
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):  # traces: off unless asked for
            from observability.tracing import tracing_setup

            tracing_setup()
