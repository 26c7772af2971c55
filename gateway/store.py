"""The gateway's shared store: Redis (the Django cache's server when REDIS_URL is set), where
every gateway process keeps the state they must agree on: rate-limit buckets
(gateway/ratelimit.py) and circuit breakers (gateway/breaker.py). Each check is one Lua script,
one round trip, atomic across processes. Without Redis (the embedded demo) both keep their state
in process memory instead (`redis_client()` is None).

When the store fails (Redis down, or slower than the cache's socket timeouts
KT_CACHE_CONNECT_TIMEOUT / KT_CACHE_TIMEOUT), `store_call` raises StoreUnavailable and this
process leaves the store alone for KT_RATELIMIT_STORE_RETRY_SECONDS, so an outage costs one
timeout per process and interval, not one per request. What each caller does then is its own
choice (rate limits: the organization's open or closed; circuit breakers: every target closed).
What was done without the store is counted (`outage_counts()`, per process) and logged: a
warning when the store goes away, a summary at most once a minute while it stays away, and one
when it is back.
"""

import logging

from django.core.cache import cache
from django.core.cache.backends.redis import RedisCacheClient
from redis.commands.core import Script
from redis.exceptions import RedisError

from gateway.store_health import StoreHealth, StoreUnavailable

log = logging.getLogger("gateway.ratelimit")  # the name operators know (docs/operations.md)


def _new_health() -> StoreHealth:
    return StoreHealth(
        name="rate-limit store",
        retry_setting="KT_RATELIMIT_STORE_RETRY_SECONDS",
        meaning="rate-limited consumer groups are served without limits or refused with 503, as "
        "their organization chose; circuit breakers let every target through",
        log=log,
    )


_health = _new_health()


def outage_counts() -> dict[str, int]:
    """What this process did without its store since it started, by kind."""
    return dict(_health.counts)


def outage_count(what: str) -> None:
    _health.count(what)


def store_reset() -> None:
    """Forget the store's health and the counts (tests)."""
    global _health
    _health = _new_health()


def redis_client():
    """The Redis client of the default cache, or None when the cache is not Redis (the
    embedded demo: state is then kept per process). Looked up per call, so a settings change
    (tests) is followed."""
    backend = getattr(cache, "_cache", None)
    if isinstance(backend, RedisCacheClient):
        return backend.get_client(write=True)
    return None


def lua(source: str) -> Script:
    """A Lua script to run with `store_call(script, keys, args)`: EVALSHA, loaded on first use."""
    return Script(None, source.encode())


def store_run(script: Script, local, keys: list, args: list):
    """`script` on Redis (shared by every process), or its Python twin `local(keys, args)` on
    this process's own state when the gateway has no Redis. Raises StoreUnavailable."""
    if redis_client() is None:
        return local(keys, args)
    return store_call(script, keys, args)


def store_call(script: Script, keys: list, args: list):
    """Run `script` on the store, or raise StoreUnavailable."""
    health = _health
    health.check()
    try:
        result = script(keys=keys, args=args, client=redis_client())
    except (RedisError, OSError) as exc:
        health.failed(exc)
        raise StoreUnavailable from exc
    health.succeeded()
    return result
