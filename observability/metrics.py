"""The Prometheus metrics (docs/operations.md "Metrics"; docs/grafana-dashboard.json).

Counters and histograms live in each process; under gunicorn (and a Celery worker's pool) they
are written to PROMETHEUS_MULTIPROC_DIR and summed over every process at scrape time
(observability/exposition.py). The wallet, budget and hold gauges are not here: they are a
snapshot computed every KT_METRICS_GAUGE_SECONDS (observability/gauges.py).

Gateway values come from the usage event the call wrote (gateway/hooks.py call_recorded), so
the metrics count exactly what the books count. The request thread only queues them: a thread
of the process applies them (observability/recorder.py, which says what a scrape then sees). Labels name organizations by slug and
departments by team id (looked up once per KT_KEY_CACHE_SECONDS per process); latency
histograms are per provider and model only, to keep their series few.
"""

from decimal import Decimal

from prometheus_client import Counter, Histogram

from chargeback.models import Department, Organization
from gateway.cache import ttl_cache
from gateway.hooks import upstream_seconds_take
from gateway.recording import DATABASE_UNAVAILABLE
from observability.recorder import child, submit

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

COST_TICKETS = Counter(
    "kt_cost_tickets",
    "Cost tickets by event: opened, approved, denied, expired, redeemed, cancelled.",
    ["organization", "department", "event"],
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
    """gateway/hooks.py listener: one gateway call's usage event. In the request's thread, so
    it only queues the facts (observability/recorder.py); `_call_apply` counts them."""
    submit(
        _call_apply,
        (
            hold_outcome,
            fields.get("status", ""),
            fields.get("organization_id"),
            fields.get("department_id"),
            fields.get("model_requested") or "",
            fields.get("provider") or "",
            fields.get("latency_ms"),
            upstream_seconds_take(),  # this thread's: taken now
            fields.get("ttft_ms"),
            fields.get("cost"),
            fields.get("currency") or "",
            fields.get("prompt_tokens"),
            fields.get("completion_tokens"),
            fields.get("cached_tokens"),
            fields.get("saved"),
        ),
    )


def _call_apply(item: tuple, batch) -> None:
    hold_outcome, status, org_id, dept_id, model, provider = item[:6]
    latency, upstream, ttft, cost, currency, prompt, completion, cached, saved = item[6:]
    if hold_outcome is not None:
        batch.inc(child(HOLDS, (hold_outcome,)))
    status = str(status)
    if status == "expired":  # the sweeper's placeholder: no call to count
        return
    who = (organization_name(org_id), department_name(dept_id), model)
    batch.inc(child(REQUESTS, (*who, provider, status)))
    if latency is not None:
        child(REQUEST_SECONDS, (provider, model)).observe(latency / 1000)
    if upstream is not None:
        child(PROVIDER_SECONDS, (provider, model)).observe(upstream)
    if ttft is not None:
        child(TTFT_SECONDS, (provider, model)).observe(ttft / 1000)
    if cost:  # summed as Decimal over the batch: one float conversion per child
        batch.inc(child(SPEND, (*who, currency)), Decimal(cost))
    for kind, tokens in (("prompt", prompt), ("completion", completion), ("cached", cached)):
        if tokens:
            batch.inc(child(TOKENS, (*who, kind)), tokens)
    if status == "cache_hit":
        batch.inc(child(CACHE_HITS, who))
        if saved:
            batch.inc(child(CACHE_SAVED, (*who, currency)), Decimal(saved))


ENDPOINTS = {
    "/v1/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    "/v1/messages": "messages",
}


def refusal(path: str, status: int) -> None:
    """A 402 or 429 answered (observability/middleware.py): queued like a call."""
    submit(_refusal_apply, (str(status), ENDPOINTS.get(path, "other")))


def _refusal_apply(item: tuple, batch) -> None:
    batch.inc(child(REFUSALS, item))


def ticket_event(event: str, ticket) -> None:
    """wallets/tickets/events.py listener (`opened` comes in the gateway's thread): queued."""
    submit(_ticket_apply, (ticket.organization_id, ticket.department_id, event))


def _ticket_apply(item: tuple, batch) -> None:
    org_id, dept_id, event = item
    batch.inc(child(COST_TICKETS, (organization_name(org_id), department_name(dept_id), event)))
