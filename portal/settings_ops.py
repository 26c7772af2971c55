"""Operations settings (docs/operations.md): probes, metrics, traces and portal sessions.

Imported at the end of portal/settings.py; reads the environment like the rest of it.
"""

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from portal.settings_checks import networks_or_fail

env = environ.Env()

# --- metrics (observability/, docs/operations.md "Metrics") ---
# Off: no gateway hook, no Celery signal handlers, and /metrics answers 404.
KT_METRICS_ENABLED = env.bool("KT_METRICS_ENABLED", default=True)
# Who may scrape /metrics: a request with `Authorization: Bearer <KT_METRICS_TOKEN>` (when set),
# or from an address in KT_METRICS_ALLOW_IPS (addresses or CIDR networks; the client address as
# portal/security.py client_ip reads it behind KT_TRUSTED_PROXIES). Anyone else: 403.
KT_METRICS_TOKEN = env("KT_METRICS_TOKEN", default="")
KT_METRICS_ALLOW_IPS = env.list("KT_METRICS_ALLOW_IPS", default=["127.0.0.1/32", "::1/128"])
# Wallet, budget and hold gauges are computed at most this often (seconds) by the Celery task
# `observability.refresh_gauges` (or by a scrape that finds them older than twice this), never
# once per scrape per department.
KT_METRICS_GAUGE_SECONDS = env.float("KT_METRICS_GAUGE_SECONDS", default=60.0)
# The gateway's request threads only queue their metric updates; a thread per process applies
# them this often (seconds). A scrape applies its own process's queue first; another worker's
# calls show within this (observability/recorder.py).
KT_METRICS_FLUSH_SECONDS = env.float("KT_METRICS_FLUSH_SECONDS", default=0.25)
# A Celery worker has no web server: with this port set it serves its own /metrics (task runs,
# failures, durations, export jobs) there, for every process of its pool.
KT_CELERY_METRICS_PORT = env.int("KT_CELERY_METRICS_PORT", default=0)

OPS_BEAT_SCHEDULE = {
    "observability-refresh-gauges": {
        "task": "observability.refresh_gauges",
        "schedule": KT_METRICS_GAUGE_SECONDS,
    }
}

# --- retention (docs/operations.md "Retention and archive") ---
# Resolved holds (captured, released, expired) are deleted this many days after they were
# resolved, daily, by the Celery task `wallets.prune_resolved_holds` (or `manage.py
# holds_prune`); the ledger and the usage events keep what audit needs. 0 keeps every hold.
# Keep it above the longest a capture can wait in the gateway's outbox (a late capture of a
# deleted hold charges nothing).
KT_HOLD_RETENTION_DAYS = env.int("KT_HOLD_RETENTION_DAYS", default=90)
if KT_HOLD_RETENTION_DAYS < 0:
    raise ImproperlyConfigured("KT_HOLD_RETENTION_DAYS: 0 (keep every hold) or a number of days")
OPS_BEAT_SCHEDULE["wallets-prune-resolved-holds"] = {
    "task": "wallets.prune_resolved_holds",
    "schedule": crontab(minute=40, hour=3),
}

# Usage events are partitioned by month on PostgreSQL (gateway/partitions.py): the partitions
# of this month and the next two are created daily by `gateway.tasks.ensure_event_partitions`
# (or `manage.py events_partitions`), which also moves rows that landed in the default one.
OPS_BEAT_SCHEDULE["gateway-ensure-event-partitions"] = {
    "task": "gateway.tasks.ensure_event_partitions",
    "schedule": crontab(minute=10, hour=3),
}
# `manage.py events_archive --month YYYY-MM` exports a month of events to this directory and
# detaches its partition; it refuses a month fewer than KT_EVENT_ARCHIVE_MIN_MONTHS months ago.
KT_EVENT_ARCHIVE_DIR = env("KT_EVENT_ARCHIVE_DIR", default="var/event-archive")
KT_EVENT_ARCHIVE_MIN_MONTHS = env.int("KT_EVENT_ARCHIVE_MIN_MONTHS", default=13)

# --- readiness (/readyz) ---
# Each dependency check (a new database connection, a Redis PING) gives up after this long.
KT_READY_TIMEOUT = env.float("KT_READY_TIMEOUT", default=2.0)

# --- portal sessions ---
# A sign-in to the admin and dashboards (password or single sign-on) lasts this many hours,
# then the user signs in again; the browser forgets the cookie when it closes as well if
# KT_SESSION_BROWSER_CLOSE is true.
KT_SESSION_HOURS = env.float("KT_SESSION_HOURS", default=12.0)
SESSION_COOKIE_AGE = int(KT_SESSION_HOURS * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env.bool("KT_SESSION_BROWSER_CLOSE", default=False)

networks_or_fail(KT_METRICS_ALLOW_IPS, "KT_METRICS_ALLOW_IPS")

__all__ = [name for name in dir() if name.isupper()]
