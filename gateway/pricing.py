"""Prices an event at its own time, and the worst case of a request before it runs."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import F, Q
from django.db.models.signals import post_delete, post_save

from chargeback.money import ZERO, quantize, token_cost
from gateway.cache import TTLCache
from gateway.models import Price


@dataclass(frozen=True)
class Usage:
    """Normalised token usage. `prompt_tokens` includes cached and cache-write tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0


# The gateway prices every request from rows kept in process for KT_PRICE_CACHE_SECONDS; the
# row in force is picked by `at` in Python, so a mid-month price change is still exact. A save in
# another process takes effect here within those seconds; one in this process clears them.
_cache = TTLCache(ttl_setting="KT_PRICE_CACHE_SECONDS")


def price_cache_clear(**_signal_kwargs) -> None:
    """Forget every cached price row (connected to Price saves and deletes)."""
    _cache.clear()


def _rows(organization_id: int | None, provider: str, model: str) -> list[Price]:
    # Organization rows first (NULLs last), newest first; ties: the row added last wins.
    return _cache.get(
        (organization_id, provider, model),
        lambda: list(
            Price.objects.filter(
                Q(organization_id=organization_id) | Q(organization__isnull=True),
                provider=provider,
                model=model,
            ).order_by(F("organization_id").asc(nulls_last=True), "-effective_from", "-id")
        ),
    )


def price_for(
    *, organization_id: int | None, provider: str, model: str, at: datetime
) -> Price | None:
    """The price in force at `at`: the organization's own row first, else the default catalog."""
    for row in _rows(organization_id, provider, model):
        if row.effective_from <= at and (row.effective_to is None or row.effective_to > at):
            return row
    return None


def cost_of(price: Price, usage: Usage) -> Decimal:
    """The exact cost of `usage` at `price`, rounded once to storage precision.

    Cached input tokens are billed at the cached rate (input rate when the catalog has none),
    cache writes at the cache-write rate; neither count can push the plain input below zero.
    """
    cached = max(0, min(usage.cached_tokens, usage.prompt_tokens))
    writes = max(0, min(usage.cache_write_tokens, usage.prompt_tokens - cached))
    plain = max(0, usage.prompt_tokens - cached - writes)
    total = (
        token_cost(plain, price.input_per_mtok)
        + token_cost(
            cached,
            price.cached_input_per_mtok
            if price.cached_input_per_mtok is not None
            else price.input_per_mtok,
        )
        + token_cost(
            writes,
            price.cache_write_per_mtok
            if price.cache_write_per_mtok is not None
            else price.input_per_mtok,
        )
        + token_cost(max(0, usage.completion_tokens), price.output_per_mtok)
    )
    return quantize(total) if total else ZERO


def worst_case_cost(
    price: Price, *, prompt_upper_tokens: int, max_output_tokens: int | None, choices: int = 1
) -> Decimal:
    """The most a request can cost: every prompt token at the highest input-side rate (cache
    writes and, in an odd catalog, cache reads may cost more than plain input), plus the output
    cap (the request's `max_tokens`, never above the model's) times `choices` (`n`: every choice
    may use the whole cap) at the output rate, rounded once. It is never below `cost_of` for
    usage within those bounds, so a hold of this amount covers the capture.
    """
    input_rate = max(
        price.input_per_mtok,
        price.cache_write_per_mtok or ZERO,
        price.cached_input_per_mtok or ZERO,
    )
    output = (
        price.max_output_tokens
        if max_output_tokens is None
        else min(max(0, max_output_tokens), price.max_output_tokens)
    )
    return quantize(
        token_cost(max(0, prompt_upper_tokens), input_rate)
        + token_cost(output * max(1, choices), price.output_per_mtok)
    )


post_save.connect(price_cache_clear, sender=Price, dispatch_uid="gateway.pricing.cache")
post_delete.connect(price_cache_clear, sender=Price, dispatch_uid="gateway.pricing.cache_del")
