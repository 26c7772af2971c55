"""Per consumer group requests-per-minute and tokens-per-minute limits (fixed one-minute windows).

Counters live in the Django cache: Redis when REDIS_URL is set (shared by every process), else
local memory (per process). Groups without limits cost nothing here. The token window counts the
tokens of finished requests; a request is admitted while the window is below the limit.
"""

import time

from django.core.cache import cache

from gateway.auth import GroupContext
from gateway.errors import GatewayError

WINDOW = 60


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
    """Count this request; GatewayError 429 when the group is over its rpm or tpm limit."""
    if not ctx.rpm_limit and not ctx.tpm_limit:
        return
    window, retry_after = _window()
    if ctx.rpm_limit and _incr(f"kt:rl:r:{ctx.limit_key}:{window}", 1) > ctx.rpm_limit:
        raise GatewayError(
            429,
            f"Rate limit reached for consumer group {ctx.group_name}: "
            f"{ctx.rpm_limit} requests per minute. Try again in {retry_after}s.",
            type="requests",
            code="rate_limit_exceeded",
            headers={"retry-after": str(retry_after)},
        )
    if ctx.tpm_limit and (cache.get(f"kt:rl:t:{ctx.limit_key}:{window}") or 0) >= ctx.tpm_limit:
        raise GatewayError(
            429,
            f"Rate limit reached for consumer group {ctx.group_name}: "
            f"{ctx.tpm_limit} tokens per minute. Try again in {retry_after}s.",
            type="tokens",
            code="rate_limit_exceeded",
            headers={"retry-after": str(retry_after)},
        )


def ratelimit_spend(ctx: GroupContext, tokens: int) -> None:
    """Add a finished request's tokens to the group's current token window."""
    if ctx.tpm_limit and tokens > 0:
        window, _ = _window()
        _incr(f"kt:rl:t:{ctx.limit_key}:{window}", tokens)
