"""OpenTelemetry traces, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (docs/operations.md
"Traces"): the Django app, httpx (the gateway's upstream calls) and Celery are instrumented with
the OpenTelemetry packages, spans go to the OTLP/HTTP endpoint in batches, and each gateway
request gets one `kt.gateway` span, open until its reply (a stream: its last byte) has gone,
carrying the request id, organization, department, model, provider, status, tokens and cost.

The OTEL_* variables of the OpenTelemetry SDK apply (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_HEADERS,
OTEL_TRACES_SAMPLER, ...). Probes and /metrics are never traced.
"""

import os
import threading

from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from gateway.hooks import on_call_recorded
from observability.middleware import GATEWAY_WRAPPERS

GATEWAY_PATHS = {
    "/v1/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    "/v1/messages": "messages",
}
_state: dict = {"tracer": None}
_local = threading.local()


def tracing_setup(exporter=None) -> TracerProvider | None:
    """Instrument this process when OTEL_EXPORTER_OTLP_ENDPOINT is set, or with `exporter`
    (spans exported as they end: the tests' in-memory exporter). Before the WSGI handler loads
    its middleware (the app's ready()): Django's instrumentation adds one."""
    if exporter is None and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    name = os.environ.get("OTEL_SERVICE_NAME", "ai-chargeback")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    excluded = os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "healthz,readyz,metrics")
    DjangoInstrumentor().instrument(tracer_provider=provider, excluded_urls=excluded)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    _state["tracer"] = provider.get_tracer("kt.gateway")
    GATEWAY_WRAPPERS[:] = [traced]
    on_call_recorded(call_recorded)
    return provider


def tracing_teardown() -> None:
    """Undo tracing_setup (tests)."""
    DjangoInstrumentor().uninstrument()
    HTTPXClientInstrumentor().uninstrument()
    CeleryInstrumentor().uninstrument()
    _state["tracer"] = None
    GATEWAY_WRAPPERS.clear()


def traced(request, get_response):
    """Run a gateway request inside its `kt.gateway` span (observability/middleware.py)."""
    endpoint = GATEWAY_PATHS.get(request.path_info)
    if endpoint is None or _state["tracer"] is None:
        return get_response(request)
    span = _state["tracer"].start_span(
        f"kt.gateway {endpoint}", attributes={"kt.endpoint": endpoint}
    )
    _local.span = span

    def finish():
        _local.span = None
        span.end()

    try:
        with trace.use_span(span, end_on_exit=False):
            response = get_response(request)
    except BaseException as exc:
        span.record_exception(exc)
        finish()
        raise
    span.set_attribute("http.response.status_code", response.status_code)
    if response.streaming:
        response._resource_closers.append(finish)  # Django closes the response after its last byte
    else:
        finish()
    return response


def call_recorded(fields: dict, hold_outcome: str | None) -> None:
    """gateway/hooks.py listener: the call's facts on its request's span."""
    span = getattr(_local, "span", None)
    if span is None or not span.is_recording():
        return
    from observability.metrics import department_name, organization_name

    attributes = {
        "kt.request_id": fields.get("request_id", ""),
        "kt.organization": organization_name(fields.get("organization_id")),
        "kt.department": department_name(fields.get("department_id")),
        "kt.model": fields.get("model_requested") or "",
        "kt.provider": fields.get("provider") or "",
        "kt.status": str(fields.get("status", "")),
        "kt.cost": str(fields.get("cost", "0")),
        "kt.currency": fields.get("currency") or "",
        "kt.prompt_tokens": fields.get("prompt_tokens") or 0,
        "kt.completion_tokens": fields.get("completion_tokens") or 0,
    }
    if hold_outcome:
        attributes["kt.hold"] = hold_outcome
    span.set_attributes(attributes)
