"""Traces (off unless OTEL_EXPORTER_OTLP_ENDPOINT is set), here with the SDK's in-memory
exporter: one `kt.gateway` span per gateway request carrying its facts, inside Django's server
span, with the upstream httpx call inside it; Celery tasks traced too; probes never."""

import json

import pytest
from django.test import Client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from observability.tracing import tracing_setup, tracing_teardown
from tests.gateway.conftest import KEY

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing_setup(exporter=exporter)
    yield exporter
    tracing_teardown()


def post(client, body):
    return client.post(
        "/v1/chat/completions",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {KEY}",
    )


def test_off_without_an_endpoint(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tracing_setup() is None


def test_one_span_per_gateway_request_with_department_model_cost_and_request_id(gw_local, spans):
    client = Client()  # after the set-up: its handler loads the tracing middleware
    plain = post(client, CHAT)
    stream = post(client, {**CHAT, "stream": True})
    body = b"".join(stream.streaming_content)
    assert plain.status_code == stream.status_code == 200
    assert b"data: [DONE]" in body
    client.get("/healthz")

    finished = spans.get_finished_spans()
    gateway = [s for s in finished if s.name == "kt.gateway chat"]
    assert len(gateway) == 2
    by_id = {s.attributes["kt.request_id"]: s for s in gateway}
    assert set(by_id) == {plain["x-kt-request-id"], stream["x-kt-request-id"]}
    span = by_id[plain["x-kt-request-id"]]
    assert span.attributes["kt.department"] == "team_engineering"
    assert span.attributes["kt.organization"] == "acme"
    assert span.attributes["kt.model"] == "fake-chat"
    assert span.attributes["kt.cost"] == plain["x-kt-cost"]
    assert span.attributes["kt.status"] == "ok"
    assert span.attributes["kt.hold"] == "captured"
    assert span.attributes["kt.prompt_tokens"] > 0
    streamed = by_id[stream["x-kt-request-id"]]
    assert streamed.attributes["kt.completion_tokens"] > 0  # recorded at the stream's end
    assert streamed.end_time > span.end_time

    # Django's server span holds the gateway span, which holds the upstream call.
    servers = {s.context.span_id: s for s in finished if s.kind == SpanKind.SERVER}
    assert span.parent.span_id in servers
    upstream = [s for s in finished if s.kind == SpanKind.CLIENT]
    assert {s.parent.span_id for s in upstream} == {s.context.span_id for s in gateway}
    # The probe is not traced.
    assert not [s for s in finished if "healthz" in s.name or "healthz" in str(s.attributes)]


def test_celery_tasks_are_traced(db, spans):
    from observability.tasks import refresh_gauges_task

    refresh_gauges_task.delay()
    names = [s.name for s in spans.get_finished_spans()]
    assert any("observability.refresh_gauges" in name for name in names), names
