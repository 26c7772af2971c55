"""Liveness and readiness for load balancers and orchestrators (docs/operations.md "Probes").

`/healthz` says the process answers: no dependency is touched, so a database outage never gets
a healthy web process restarted. `/readyz` says whether it can serve: each configured database
takes a new connection (bounded by KT_READY_TIMEOUT, not the request pool's wait) and answers,
the default one has every migration on disk applied, Redis and the Celery broker answer PING
when configured, and the pricing catalog has prices. Each failure is named in the JSON reply,
which is then a 503. A read replica's lag is reported beside the checks, never as a failure.
"""

from functools import cache

import psycopg
import redis
from django.conf import settings
from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.http import JsonResponse

from chargeback.replica import replica_lag_seconds
from gateway.models import Price

LIBPQ_OPTIONS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
        "passfile",
        "service",
        "target_session_attrs",
        "application_name",
        "gssencmode",
        "channel_binding",
    }
)
_migrated = False  # once every migration was applied, it stays so for this process


def healthz(request) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request) -> JsonResponse:
    checks = readiness()
    ready = all(result == "ok" for result in checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    if checks.get("database:replica") == "ok":
        # Informative, never a failure: a lagging replica only delays reports (the page says so).
        body["replica"] = _replica_state()
    return JsonResponse(body, status=200 if ready else 503)


def _replica_state() -> dict:
    try:
        lag = replica_lag_seconds()
    except Exception as exc:  # noqa: BLE001
        return {"error": _failure(exc)}
    if lag is None:
        return {"standby": False}
    return {
        "standby": True,
        "lag_seconds": round(lag, 1),
        "behind": lag > settings.KT_REPLICA_LAG_NOTICE_SECONDS,
    }


def readiness() -> dict[str, str]:
    """Check name -> "ok" or what failed."""
    checks: dict[str, str] = {}
    for alias, config in settings.DATABASES.items():
        checks[f"database:{alias}"] = _database(alias, config)
    if checks.get("database:default") == "ok":
        checks["migrations"] = _migrations()
        checks["pricing"] = _pricing()
    for name, url in _redis_urls().items():
        checks[name] = _redis(url)
    return checks


def _timeout() -> float:
    return settings.KT_READY_TIMEOUT


def _database(alias: str, config: dict) -> str:
    if config["ENGINE"] != "django.db.backends.postgresql":
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure means not ready, and says why
            return _failure(exc)
        return "ok"
    # The connection's own libpq settings (sslmode=require, ...); Django's pool options are not.
    options = {k: v for k, v in (config.get("OPTIONS") or {}).items() if k in LIBPQ_OPTIONS}
    try:
        with psycopg.connect(
            dbname=config["NAME"],
            user=config.get("USER") or None,
            password=config.get("PASSWORD") or None,
            host=config.get("HOST") or None,
            port=config.get("PORT") or None,
            connect_timeout=max(1, round(_timeout())),
            **options,
        ) as conn:
            # A plain SET rather than a startup option: pgbouncer refuses unknown ones.
            conn.execute(f"SET statement_timeout = {int(_timeout() * 1000)}")
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001
        return _failure(exc)
    return "ok"


@cache
def _expected_migrations() -> frozenset:
    """Every migration on disk (read once per process)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def _migrations() -> str:
    global _migrated
    if _migrated:
        return "ok"
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT app, name FROM django_migrations")
            applied = {(app, name) for app, name in cursor.fetchall()}
    except Exception as exc:  # noqa: BLE001
        return _failure(exc)
    missing = sorted(_expected_migrations() - applied)
    if missing:
        shown = ", ".join(f"{app}.{name}" for app, name in missing[:5])
        return f"{len(missing)} migration(s) not applied: {shown}"
    _migrated = True
    return "ok"


def _pricing() -> str:
    try:
        loaded = Price.objects.filter(organization__isnull=True).exists()
    except Exception as exc:  # noqa: BLE001
        return _failure(exc)
    return "ok" if loaded else "no prices loaded (manage.py load_prices)"


def _redis_urls() -> dict[str, str]:
    urls = {}
    if settings.REDIS_URL:
        urls["redis"] = settings.REDIS_URL
    broker = settings.CELERY_BROKER_URL
    if broker.startswith(("redis://", "rediss://")) and broker != settings.REDIS_URL:
        urls["broker"] = broker
    return urls


def _redis(url: str) -> str:
    client = redis.Redis.from_url(url, socket_connect_timeout=_timeout(), socket_timeout=_timeout())
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        return _failure(exc)
    finally:
        client.close()
    return "ok"


def _failure(exc: Exception) -> str:
    # The exception's class and first line: no connection string (it may carry a password).
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:300]
