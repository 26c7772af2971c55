"""Per consumer group requests-per-minute and tokens-per-minute limits (fixed one-minute windows).

Counters live in the Django cache: Redis when REDIS_URL is set (shared by every process), else
local memory (per process). Groups without limits cost nothing here. The token window counts the
tokens of finished requests; a request is admitted while the window is below the limit.

Without its store: when a call to the store fails (Redis down, or slower than the cache's socket
timeouts KT_CACHE_CONNECT_TIMEOUT / KT_CACHE_TIMEOUT), the request gets its organization's choice,
`Organization.rate_limits_unavailable`: `open` serves it without limits, `closed` answers 503 with
`retry-after`. Never a 500. After a failure this process leaves the store alone for
KT_RATELIMIT_STORE_RETRY_SECONDS, so an outage costs one timeout per process and interval, not
one per request. `ratelimit_spend` runs after the capture and never raises: tokens the store
cannot take are left out of the window. Each of these is counted (`outage_counts()`, per
process) and logged: a warning when the store goes away, a summary at most once a minute while
it stays away, and one when it is back.
"""

import logging
import math
import threading
import time
from collections import Counter

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from gateway.auth import GroupContext
from gateway.errors import GatewayError

log = logging.getLogger(__name__)

WINDOW = 60
REPORT_SECONDS = 60.0
# What is counted while the store is unavailable.
SERVED = "served without limits"  # fail open
REFUSED = "refused with 503"  # fail closed
TOKENS_LOST = "token counts lost"  # ratelimit_spend after the capture


class StoreUnavailable(Exception):
    """The store failed just now, or failed recently and is being left alone."""


class _StoreHealth:
    """This process's view of the store: healthy, or down since a failure."""

    def __init__(self):
        self._lock = threading.Lock()
        self.down_since: float | None = None  # time.monotonic()
        self.retry_at = 0.0
        self.reported_at = 0.0
        self.counts: Counter = Counter()  # since the process started
        self.unreported: Counter = Counter()

    def check(self) -> None:
        if self.down_since is not None and time.monotonic() < self.retry_at:
            raise StoreUnavailable

    def failed(self, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            first = self.down_since is None
            if first:
                self.down_since = now
            self.retry_at = now + settings.KT_RATELIMIT_STORE_RETRY_SECONDS
        if first:
            log.warning(
                "rate-limit store unavailable (%s: %s): rate-limited consumer groups are served "
                "without limits or refused with 503, as their organization chose",
                type(exc).__name__,
                exc,
            )

    def succeeded(self) -> None:
        if self.down_since is None:  # the common case: no lock
            return
        with self._lock:
            if self.down_since is None:
                return
            seconds = time.monotonic() - self.down_since
            self.down_since = None
            counts, self.unreported = self.unreported, Counter()
        log.warning("rate-limit store available again after %.1f s (%s)", seconds, _text(counts))

    def count(self, what: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.counts[what] += 1
            self.unreported[what] += 1
            due = now - self.reported_at >= REPORT_SECONDS
            if due:
                self.reported_at = now
                counts, self.unreported = self.unreported, Counter()
        if due:
            log.warning("rate-limit store unavailable: %s", _text(counts))


def _text(counts: Counter) -> str:
    return ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "nothing affected"


_health = _StoreHealth()


def outage_counts() -> dict[str, int]:
    """What this process did without its store since it started, by kind."""
    return dict(_health.counts)


def ratelimit_store_reset() -> None:
    """Forget the store's health and the counts (tests)."""
    global _health
    _health = _StoreHealth()


def _store(call):
    """`call()` against the store, or StoreUnavailable."""
    health = _health
    health.check()
    try:
        result = call()
    except (RedisError, OSError) as exc:
        health.failed(exc)
        raise StoreUnavailable from exc
    health.succeeded()
    return result


def _window() -> tuple[int, int]:
    now = time.time()
    return int(now // WINDOW), int(WINDOW - now % WINDOW) + 1


def _incr(key: str, by: int) -> int:
    cache.add(key, 0, WINDOW * 2)
    try:
        return cache.incr(key, by)
    except ValueError:  # expired between add and incr
        cache.set(key, by, WINDOW * 2)
        return by


def ratelimit_admit(ctx: GroupContext) -> None:
    """Count this request; GatewayError 429 when the group is over its rpm or tpm limit, 503
    when the store is unavailable and the organization fails closed."""
    if not ctx.rpm_limit and not ctx.tpm_limit:
        return
    window, retry_after = _window()
    try:
        if ctx.rpm_limit:
            requests = _store(lambda: _incr(f"kt:rl:r:{ctx.limit_key}:{window}", 1))
            if requests > ctx.rpm_limit:
                raise GatewayError(
                    429,
                    f"Rate limit reached for consumer group {ctx.group_name}: "
                    f"{ctx.rpm_limit} requests per minute. Try again in {retry_after}s.",
                    type="requests",
                    code="rate_limit_exceeded",
                    headers={"retry-after": str(retry_after)},
                )
        if ctx.tpm_limit:
            tokens = _store(lambda: cache.get(f"kt:rl:t:{ctx.limit_key}:{window}") or 0)
            if tokens >= ctx.tpm_limit:
                raise GatewayError(
                    429,
                    f"Rate limit reached for consumer group {ctx.group_name}: "
                    f"{ctx.tpm_limit} tokens per minute. Try again in {retry_after}s.",
                    type="tokens",
                    code="rate_limit_exceeded",
                    headers={"retry-after": str(retry_after)},
                )
    except StoreUnavailable:
        _without_store(ctx)


def _without_store(ctx: GroupContext) -> None:
    if not ctx.rate_limits_fail_closed:
        _health.count(SERVED)
        return
    _health.count(REFUSED)
    retry_after = max(1, math.ceil(settings.KT_RATELIMIT_STORE_RETRY_SECONDS))
    raise GatewayError(
        503,
        f"The rate limits of consumer group {ctx.group_name} cannot be checked right now, and "
        f"its organization does not serve it unchecked. Try again in {retry_after}s.",
        type="server_error",
        code="rate_limit_unavailable",
        headers={"retry-after": str(retry_after)},
    )


def ratelimit_spend(ctx: GroupContext, tokens: int) -> None:
    """Add a finished request's tokens to the group's current token window.

    Runs after the capture, so it never raises: the request has been served and charged, and a
    count the store cannot take only lets the group's next requests through more easily."""
    if not ctx.tpm_limit or tokens <= 0:
        return
    try:
        window, _ = _window()
        _store(lambda: _incr(f"kt:rl:t:{ctx.limit_key}:{window}", tokens))
    except StoreUnavailable:
        _health.count(TOKENS_LOST)
    except Exception:
        _health.count(TOKENS_LOST)
        log.exception("counting the tokens of consumer group %s failed", ctx.group_name)
