"""Rate limits per consumer group and per end user: requests per minute, tokens per minute,
tokens per day and requests in flight (`max_parallel_requests`), with the organization's
`rate_limit_defaults` where a group sets none (chargeback/rate_limits.py).

The limits are token buckets kept in the shared store (gateway/store.py: Redis, so every
process and instance sees the same counts; per process without Redis); the arithmetic is in
gateway/ratelimit_buckets.py. A request costs one round trip to the store when it is admitted
(every limit checked at once, atomically) and one when it ends (its tokens taken, its in-flight
slot freed); a group without limits costs nothing here. Responses carry OpenAI's
`x-ratelimit-limit-*`, `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` headers for requests
and tokens (the tightest limit of each kind that applies), and a refusal is OpenAI's 429 with
`retry-after`.

Without its store: when a call to the store fails, the request gets its organization's choice,
`Organization.rate_limits_unavailable`: `open` serves it without limits, `closed` answers 503
with `retry-after`. Never a 500. `ratelimit_finish` runs after the capture and never raises:
tokens the store cannot take are left out of the buckets.
"""

import hashlib
import logging
import math
from dataclasses import dataclass

from django.conf import settings

from gateway.errors import GatewayError, retry_later
from gateway.ratelimit_buckets import ADMIT, FINISH, LocalBuckets, duration, reset_seconds
from gateway.store import (
    StoreUnavailable,
    outage_count,
    outage_counts,
    store_reset,
    store_run,
)

log = logging.getLogger(__name__)

# What is counted while the store is unavailable (gateway.store.outage_counts).
SERVED = "served without limits"  # fail open
REFUSED = "refused with 503"  # fail closed
TOKENS_LOST = "token counts lost"  # ratelimit_finish after the capture

# kind, period (seconds), the limit's words in messages, OpenAI's header kind
KINDS = {
    "rpm": ("r", 60, "requests per minute", "requests"),
    "tpm": ("t", 60, "tokens per minute", "tokens"),
    "tpd": ("t", 86_400, "tokens per day", "tokens"),
    "parallel": ("p", 0, "requests in flight", ""),
}

__all__ = [
    "REFUSED",
    "SERVED",
    "TOKENS_LOST",
    "LimitSet",
    "outage_counts",
    "ratelimit_admit",
    "ratelimit_finish",
    "ratelimit_store_reset",
]

_local = LocalBuckets()


def ratelimit_store_reset() -> None:
    """Forget the store's health, the counts and the per-process buckets (tests)."""
    global _local
    store_reset()
    _local = LocalBuckets()


@dataclass(frozen=True)
class LimitSet:
    """A group's effective limits (its own, else its organization's defaults), decided when the
    group's key is loaded (gateway/auth.py): `group` applies to the whole group, `user` to each
    end user of it; each is a tuple of (name, value), name one of KINDS."""

    group: tuple = ()
    user: tuple = ()

    @classmethod
    def of(cls, *, group: dict, user: dict, defaults: dict) -> "LimitSet | None":
        per_user = defaults.get("per_user") or {}
        own = tuple((n, group.get(n) or defaults.get(n)) for n in KINDS)
        users = tuple((n, user.get(n) or per_user.get(n)) for n in KINDS)
        found = cls(
            group=tuple((n, v) for n, v in own if v), user=tuple((n, v) for n, v in users if v)
        )
        return found if found.group or found.user else None


@dataclass(frozen=True)
class Limit:
    key: str
    name: str  # rpm, tpm, tpd, parallel
    value: int
    who: str  # "consumer group support", "end user alice"

    @property
    def kind(self) -> str:
        return KINDS[self.name][0]

    @property
    def period(self) -> int:
        return KINDS[self.name][1]

    def args(self) -> list:
        return [self.kind, self.value, self.period]


class Admission:
    """An admitted request's limits: what it ends with (`ratelimit_finish`) and the headers of
    its response."""

    def __init__(self, limits: list[Limit], request_id: str, levels: list[float] | None):
        self.limits = limits
        self.request_id = request_id
        self.levels = levels  # None: admitted without the store (no headers)
        self.finished = False

    def headers(self) -> dict:
        if self.levels is None:
            return {}
        return _headers(self.limits, self.levels, admitted=True)


def _limits_of(ctx, user: str) -> list[Limit]:
    limits = [
        Limit(f"kt:rl:{ctx.limit_key}:{name}", name, value, f"consumer group {ctx.group_name}")
        for name, value in ctx.limits.group
    ]
    if user and ctx.limits.user:
        digest = hashlib.sha256(user.encode()).hexdigest()[:24]
        limits += [
            Limit(f"kt:rl:{ctx.limit_key}:u:{digest}:{name}", name, value, f"end user {user}")
            for name, value in ctx.limits.user
        ]
    return limits


def ratelimit_admit(ctx, *, user: str, request_id: str) -> Admission | None:
    """Admit this request under every limit of its group and end user, or GatewayError 429
    (503 when the store is unavailable and the organization fails closed). None when the group
    has no limits (nothing to do at its end either)."""
    if ctx.limits is None:
        return None
    limits = _limits_of(ctx, user)
    if not limits:
        return None
    slot_seconds = settings.KT_HOLD_TTL_SECONDS  # a request never holds a slot longer
    args = [request_id, slot_seconds]
    for limit in limits:
        args += limit.args()
    try:
        result = store_run(ADMIT, _local.admit, [limit.key for limit in limits], args)
    except StoreUnavailable:
        _without_store(ctx)
        return Admission(limits, request_id, None)
    refused, wait = int(result[0]), float(result[1])
    levels = [float(level) for level in result[2:]]
    if refused:
        raise _refusal(limits, levels, limits[refused - 1], wait)
    return Admission(limits, request_id, levels)


def _refusal(limits: list[Limit], levels: list[float], limit: Limit, wait: float) -> GatewayError:
    retry_after = max(1, math.ceil(wait))
    words, header_kind = KINDS[limit.name][2], KINDS[limit.name][3]
    headers = _headers(limits, levels, admitted=False)
    headers["retry-after"] = str(retry_after)
    headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
    return GatewayError(
        429,
        f"Rate limit reached for {limit.who}: {limit.value} {words}. "
        f"Please try again in {duration(wait)}.",
        type=header_kind or "requests",
        code="rate_limit_exceeded",
        headers=headers,
    )


def _headers(limits: list[Limit], levels: list[float], *, admitted: bool) -> dict:
    """OpenAI's headers for requests and for tokens: of each kind, the limit with the least
    left (per minute or per day, group or end user)."""
    headers = {}
    for header_kind in ("requests", "tokens"):
        tightest = None
        for limit, level in zip(limits, levels, strict=True):
            if KINDS[limit.name][3] != header_kind:
                continue
            remaining = max(0, math.floor(level))
            if tightest is None or remaining < tightest[1]:
                tightest = (limit, remaining, level)
        if tightest is None:
            continue
        limit, remaining, level = tightest
        reset = reset_seconds(limit.kind, limit.value, limit.period, level)
        headers[f"x-ratelimit-limit-{header_kind}"] = str(limit.value)
        headers[f"x-ratelimit-remaining-{header_kind}"] = str(remaining)
        headers[f"x-ratelimit-reset-{header_kind}"] = duration(reset)
    return headers


def _without_store(ctx) -> None:
    if not ctx.rate_limits_fail_closed:
        outage_count(SERVED)
        return
    outage_count(REFUSED)
    retry_after = max(1, math.ceil(settings.KT_RATELIMIT_STORE_RETRY_SECONDS))
    raise retry_later(
        f"The rate limits of consumer group {ctx.group_name} cannot be checked right now, and "
        f"its organization does not serve it unchecked. Try again in {retry_after}s.",
        code="rate_limit_unavailable",
        retry_after=retry_after,
    )


def ratelimit_finish(admission: Admission | None, tokens: int) -> None:
    """End an admitted request: take its tokens from its token buckets and free its in-flight
    slots. Once per admission.

    Runs after the capture, so it never raises: the request has been served and charged, and a
    count the store cannot take only lets the group's next requests through more easily (a
    slot it cannot free expires after KT_HOLD_TTL_SECONDS)."""
    if admission is None or admission.finished:
        return
    admission.finished = True
    limits = [
        limit
        for limit in admission.limits
        if limit.kind == "p" or (limit.kind == "t" and tokens > 0)
    ]
    if not limits:
        return
    args = [admission.request_id, max(0, tokens)]
    for limit in limits:
        args += limit.args()
    try:
        store_run(FINISH, _local.finish, [limit.key for limit in limits], args)
    except StoreUnavailable:
        outage_count(TOKENS_LOST)
    except Exception:
        outage_count(TOKENS_LOST)
        log.exception("ending the rate limits of request %s failed", admission.request_id)
