"""The Prometheus metrics (docs/operations.md "Metrics"; docs/grafana-dashboard.json).

Counters and histograms live in each process; under gunicorn (and a Celery worker's pool) they
are written to PROMETHEUS_MULTIPROC_DIR and summed over every process at scrape time
(observability/exposition.py). The wallet, budget and hold gauges are not here: they are a
snapshot computed every KT_METRICS_GAUGE_SECONDS (observability/gauges.py).

Gateway values come from the usage event the call wrote (gateway/hooks.py call_recorded), so
the metrics count exactly what the books count. Labels name organizations by slug and
departments by team id (looked up once per KT_KEY_CACHE_SECONDS per process); latency
histograms are per provider and model only, to keep their series few.
"""

from decimal import Decimal

from prometheus_client import Counter, Histogram

from chargeback.models import Department, Organization
from gateway.cache import ttl_cache
from gateway.hooks import upstream_seconds_take
from gateway.recording import DATABASE_UNAVAILABLE

WHO = ["organization", "department", "model"]
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

REQUESTS = Counter(
    "kt_gateway_requests",
    "Gateway calls that wrote a usage event, by outcome (event status).",
    ["organization", "department", "model", "provider", "status"],
)
REQUEST_SECONDS = Histogram(
    "kt_gateway_request_duration_seconds",
    "Gateway call duration, request received to capture (a stream: to its end).",
    ["provider", "model"],
    buckets=LATENCY_BUCKETS,
)
PROVIDER_SECONDS = Histogram(
    "kt_gateway_provider_duration_seconds",
    "Provider latency: request sent upstream to the reply's headers.",
    ["provider", "model"],
    buckets=LATENCY_BUCKETS,
)
TTFT_SECONDS = Histogram(
    "kt_gateway_time_to_first_token_seconds",
    "Streams: request received to the first content relayed.",
    ["provider", "model"],
    buckets=LATENCY_BUCKETS,
)
SPEND = Counter(
    "kt_spend",
    "Cost charged to wallets, in the wallet's currency.",
    [*WHO, "currency"],
)
TOKENS = Counter(
    "kt_tokens",
    "Tokens billed, by kind (prompt, completion, cached).",
    [*WHO, "kind"],
)
CACHE_HITS = Counter("kt_gateway_cache_hits", "Calls answered by the response cache.", WHO)
CACHE_SAVED = Counter(
    "kt_gateway_cache_saved",
    "What the response cache's hits would have cost at the provider.",
    [*WHO, "currency"],
)
HOLDS = Counter(
    "kt_holds_resolved",
    "Wallet holds resolved: captured, released (nothing charged) or expired (swept).",
    ["outcome"],
)
REFUSALS = Counter(
    "kt_gateway_refusals",
    "Requests refused for funds (402) or rate limits (429).",
    ["status", "endpoint"],
)

_organizations = ttl_cache()
_departments = ttl_cache()


def _name(cache, model, pk, field):
    if pk is None:
        return ""

    def load():
        try:
            return model.objects.filter(pk=pk).values_list(field, flat=True).first()
        except DATABASE_UNAVAILABLE:
            return None

    return cache.get(pk, load) or str(pk)


def organization_name(pk) -> str:
    return _name(_organizations, Organization, pk, "slug")


def department_name(pk) -> str:
    return _name(_departments, Department, pk, "team_id")


def call_recorded(fields: dict, hold_outcome: str | None) -> None:
    """gateway/hooks.py listener: one gateway call's usage event."""
    if hold_outcome is not None:
        HOLDS.labels(hold_outcome).inc()
    status = str(fields.get("status", ""))
    if status == "expired":  # the sweeper's placeholder: no call to count
        return
    organization = organization_name(fields.get("organization_id"))
    department = department_name(fields.get("department_id"))
    model = fields.get("model_requested") or ""
    provider = fields.get("provider") or ""
    REQUESTS.labels(organization, department, model, provider, status).inc()
    latency = fields.get("latency_ms")
    if latency is not None:
        REQUEST_SECONDS.labels(provider, model).observe(latency / 1000)
    upstream = upstream_seconds_take()
    if upstream is not None:
        PROVIDER_SECONDS.labels(provider, model).observe(upstream)
    if fields.get("ttft_ms") is not None:
        TTFT_SECONDS.labels(provider, model).observe(fields["ttft_ms"] / 1000)
    who = (organization, department, model)
    cost = fields.get("cost")
    if cost:
        SPEND.labels(*who, fields.get("currency") or "").inc(float(Decimal(cost)))
    for kind, field in (
        ("prompt", "prompt_tokens"),
        ("completion", "completion_tokens"),
        ("cached", "cached_tokens"),
    ):
        if fields.get(field):
            TOKENS.labels(*who, kind).inc(fields[field])
    if status == "cache_hit":
        CACHE_HITS.labels(*who).inc()
        if fields.get("saved"):
            CACHE_SAVED.labels(*who, fields.get("currency") or "").inc(float(fields["saved"]))


ENDPOINTS = {
    "/v1/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    "/v1/messages": "messages",
}


def refusal(path: str, status: int) -> None:
    REFUSALS.labels(str(status), ENDPOINTS.get(path, "other")).inc()
