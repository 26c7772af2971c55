"""Prices an event at its own time, and the worst case of a request before it runs."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q

from chargeback.money import ZERO, quantize, token_cost
from gateway.models import Price


@dataclass(frozen=True)
class Usage:
    """Normalised token usage. `prompt_tokens` includes cached and cache-write tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0


def price_for(
    *, organization_id: int | None, provider: str, model: str, at: datetime
) -> Price | None:
    """The price in force at `at`: the organization's own row first, else the default catalog."""
    rows = Price.objects.filter(
        Q(organization_id=organization_id) | Q(organization__isnull=True),
        provider=provider,
        model=model,
        effective_from__lte=at,
    ).filter(Q(effective_to__isnull=True) | Q(effective_to__gt=at))
    # Organization rows sort before default ones (NULLs last), newest first within each.
    return rows.order_by("organization_id", "-effective_from").first()


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
    price: Price, *, prompt_upper_tokens: int, max_output_tokens: int | None
) -> Decimal:
    """The most a request can cost: every prompt token at the full input rate (cache writes may
    cost more: their rate when higher), plus the output cap at the output rate."""
    input_rate = max(price.input_per_mtok, price.cache_write_per_mtok or ZERO)
    output = (
        price.max_output_tokens
        if max_output_tokens is None
        else min(max_output_tokens, price.max_output_tokens)
    )
    return quantize(
        token_cost(prompt_upper_tokens, input_rate) + token_cost(output, price.output_per_mtok)
    )
