"""The gateway's settings (imported by portal/settings.py): the upstream pool, the rate-limit
store, pricing, the capture outbox, the response cache, routing policies and cost tickets
(docs/configuration.md lists them all)."""

from pathlib import Path

import environ

_BASE_DIR = Path(__file__).resolve().parent.parent
_env = environ.Env()  # underscored: `import *` brings only the settings

# --- upstream connection pool per process and per provider origin (gateway/providers.py) ---
KT_UPSTREAM_MAX_CONNECTIONS = _env.int("KT_UPSTREAM_MAX_CONNECTIONS", default=1000)
KT_UPSTREAM_MAX_KEEPALIVE = _env.int("KT_UPSTREAM_MAX_KEEPALIVE", default=100)

# --- the rate-limit store (gateway/store.py) ---
# After it failed, a gateway process leaves it alone this long (seconds); `retry-after` of a
# fail-closed 503 says the same (gateway/ratelimit.py).
KT_RATELIMIT_STORE_RETRY_SECONDS = _env.float("KT_RATELIMIT_STORE_RETRY_SECONDS", default=2.0)

# --- pricing (gateway/pricing.py, gateway/fastpath.py) ---
# Price rows of a model stay in each process this long (picked by time, so a price change that
# starts later is exact; one loaded after its start is seen within this delay).
KT_PRICE_CACHE_SECONDS = _env.float("KT_PRICE_CACHE_SECONDS", default=5.0)
# true: the gateway's hold and capture statements (PostgreSQL) commit without waiting for the
# WAL flush; a database crash may lose the last fraction of a second of them (docs/performance.md).
KT_GATEWAY_ASYNC_COMMIT = _env.bool("KT_GATEWAY_ASYNC_COMMIT", default=False)
# true: captures that arrive together commit in one transaction (gateway/groupcommit.py); each
# request still returns only after its capture committed.
KT_GATEWAY_GROUP_COMMIT = _env.bool("KT_GATEWAY_GROUP_COMMIT", default=True)

# --- capture outbox (gateway/capture.py, gateway/outbox.py) ---
# A capture that cannot commit (the database is away) is retried this long, then kept in the
# outbox directory on this host and replayed once the database is back (docs/reliability.md).
KT_CAPTURE_RETRY_SECONDS = _env.float("KT_CAPTURE_RETRY_SECONDS", default=2.0)
# Must survive a restart of the gateway (a volume in containers); the gateway processes of the
# host replay it, and so does the Celery worker if it mounts the same directory.
KT_CAPTURE_OUTBOX_DIR = _env(
    "KT_CAPTURE_OUTBOX_DIR", default=str(_BASE_DIR / "var" / "capture-outbox")
)

# --- response cache (gateway/response_cache, docs/gateway.md "Response cache") ---
# Where replies are kept: a Redis URL (default REDIS_URL), else the embedded SQLite file below,
# which the gateway processes of one host share (the demo).
KT_RESPONSE_CACHE_URL = _env("KT_RESPONSE_CACHE_URL", default=_env("REDIS_URL", default=""))
KT_RESPONSE_CACHE_PATH = _env(
    "KT_RESPONSE_CACHE_PATH", default=str(_BASE_DIR / "var" / "response-cache.sqlite3")
)
# What one organization's entries may take (bytes); above it the entries closest to expiry go.
KT_RESPONSE_CACHE_MAX_BYTES = _env.int("KT_RESPONSE_CACHE_MAX_BYTES", default=256 * 1024 * 1024)
# Identical requests wait at most this long (seconds) for the one that calls the provider.
KT_RESPONSE_CACHE_FILL_SECONDS = _env.float("KT_RESPONSE_CACHE_FILL_SECONDS", default=30.0)
# A Redis call slower than this (seconds) counts as the store being away: the request goes on
# uncached, and this process leaves the store alone for KT_RESPONSE_CACHE_RETRY_SECONDS.
KT_RESPONSE_CACHE_TIMEOUT = _env.float("KT_RESPONSE_CACHE_TIMEOUT", default=0.5)
KT_RESPONSE_CACHE_RETRY_SECONDS = _env.float("KT_RESPONSE_CACHE_RETRY_SECONDS", default=2.0)
# Redis: a reply this process read or wrote is also kept in its memory this long (seconds, never
# past the entry's TTL; 0: never), at most LOCAL_MAX_BYTES per process (recent.py).
KT_RESPONSE_CACHE_LOCAL_SECONDS = _env.float("KT_RESPONSE_CACHE_LOCAL_SECONDS", default=2.0)
KT_RESPONSE_CACHE_LOCAL_MAX_BYTES = _env.int(
    "KT_RESPONSE_CACHE_LOCAL_MAX_BYTES", default=16 * 1024 * 1024
)
# true: a free cache hit is answered only once its event's WAL is flushed (one flush per batch of
# hits, gateway/response_cache/hit_events.py); false: the event commits without waiting for it,
# as a hold does (a database crash may lose the last fraction of a second of hit events, never
# a charge). Measured in docs/performance.md.
KT_RESPONSE_CACHE_HIT_SYNC_COMMIT = _env.bool("KT_RESPONSE_CACHE_HIT_SYNC_COMMIT", default=False)
# Free hits' events written at once per process before later hits queue and are written
# together, one multi-row INSERT per batch (gateway/response_cache/hit_events.py).
KT_RESPONSE_CACHE_HIT_PARALLEL = _env.int("KT_RESPONSE_CACHE_HIT_PARALLEL", default=1)

# --- routing policies (gateway/policies.py) ---
# How long a gateway process reuses a department's premium share of the month's spend when a
# routing policy caps it (gateway/policies.py).
KT_POLICY_SHARE_SECONDS = _env.float("KT_POLICY_SHARE_SECONDS", default=30.0)

# --- cost tickets (wallets/tickets, docs/configuration.md "Cost tickets") ---
# A pending cost ticket nobody decided is closed as `expired` this many hours after it opened
# (by the hold sweeper's beat task, every minute).
KT_COST_TICKET_HOURS = _env.float("KT_COST_TICKET_HOURS", default=24)
# An approved ticket nobody redeemed (no retry with X-KT-Ticket) is closed as `expired` this many
# hours after its approval, by the same task: an approval is not an overdraft granted forever.
KT_COST_TICKET_APPROVED_HOURS = _env.float("KT_COST_TICKET_APPROVED_HOURS", default=24)
