"""Which target serves a model, at what price, from which wallets; cached per process.

A target serves the models in its `served_models`; a target with an empty list serves any model
that has a price for its provider. Targets whose `served_models` names the model explicitly win
over catch-all targets; otherwise the first by `target_id`. With failover configured, every
target that serves the model is a candidate (`serving`, ordered by gateway/failover.py). The
organization's failover settings are loaded with its targets, in the same query.
"""

from dataclasses import dataclass, field

from django.db.models import Q
from django.utils import timezone

from chargeback.env_refs import env_ref_allowed
from chargeback.models import ProviderTarget
from gateway.auth import GroupContext
from gateway.cache import ttl_cache
from gateway.errors import GatewayError, bad_request
from gateway.models import Price
from gateway.pricing import price_for
from gateway.routing_settings import FailoverSettings
from wallets.cascade import wallet_chain

# Which wire formats each provider kind can serve (see gateway/providers.py).
ENDPOINTS = {
    "openai": {"chat", "embeddings", "messages"},  # messages: translated (gateway/translate.py)
    "anthropic": {"chat", "messages"},
    "fake": {"chat", "embeddings", "messages"},
}

_targets = ttl_cache(1_000)
_prices = ttl_cache()
_wallets = ttl_cache()
_model_lists = ttl_cache(1_000)


@dataclass(frozen=True)
class Target:
    pk: int
    target_id: str
    provider: str
    base_url: str
    secret_env: str
    served_models: tuple
    options: dict
    organization_id: int = 0
    # The operator allows this organization to read `secret_env` (chargeback/env_refs.py),
    # decided when the targets are loaded, so the request path only reads a flag.
    secret_env_allowed: bool = False
    # A stored secret (chargeback/secretbox.py): its name and its ciphertext, decrypted once
    # per process by gateway/providers.py. Never in a repr, so never in a log or error page.
    secret_name: str = ""
    secret_token: str = field(default="", repr=False)


def _target(t: ProviderTarget) -> Target:
    return Target(
        pk=t.pk,
        target_id=t.target_id,
        provider=t.provider,
        base_url=t.base_url,
        secret_env=t.secret_env,
        served_models=tuple(t.served_models or ()),
        options=dict(t.options or {}),
        organization_id=t.organization_id,
        secret_env_allowed=env_ref_allowed(t.organization.env_refs_allowed, t.secret_env),
        secret_name=t.secret.name if t.secret_id else "",
        secret_token=t.secret.ciphertext if t.secret_id else "",
    )


def _load_targets(organization_id: int) -> tuple[list[Target], FailoverSettings | None]:
    rows = list(
        ProviderTarget.objects.filter(organization_id=organization_id)
        .select_related("organization", "organization__gateway_settings", "secret")
        .order_by("target_id")
    )
    row = getattr(rows[0].organization, "gateway_settings", None) if rows else None
    return [_target(t) for t in rows], FailoverSettings.of(row)


def targets_of(organization_id: int) -> list[Target]:
    return _targets.get(organization_id, lambda: _load_targets(organization_id))[0]


def failover_of(organization_id: int) -> FailoverSettings | None:
    """The organization's failover and circuit-breaker settings; None when it has neither."""
    return _targets.get(organization_id, lambda: _load_targets(organization_id))[1]


def price_now(*, organization_id: int, provider: str, model: str) -> Price | None:
    """The price in force now; cached, but never used outside its effective period."""
    now = timezone.now()
    key = (organization_id, provider, model)
    price = _prices.get(
        key,
        lambda: price_for(organization_id=organization_id, provider=provider, model=model, at=now),
    )
    if price is not None and (
        price.effective_from > now or (price.effective_to is not None and price.effective_to <= now)
    ):
        price = price_for(organization_id=organization_id, provider=provider, model=model, at=now)
    return price


def route(ctx: GroupContext, *, model: str, endpoint: str) -> tuple[Target, Price]:
    """The target and price for `model`, or GatewayError 400 saying why not."""
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter", code="missing_model", param="model")
    if ctx.allowed_models and model not in ctx.allowed_models:
        raise GatewayError(
            400,
            f"The model `{model}` is not allowed for consumer group {ctx.group_name}.",
            code="model_not_allowed",
            param="model",
        )
    targets = [t for t in targets_of(ctx.organization_id) if endpoint in ENDPOINTS[t.provider]]
    explicit = [t for t in targets if model in t.served_models]
    for target in explicit:
        price = price_now(
            organization_id=ctx.organization_id, provider=target.provider, model=model
        )
        if price is not None:
            return target, price
    if explicit:
        raise GatewayError(
            400,
            f"The model `{model}` has no price for provider {explicit[0].provider}; "
            "add one to the pricing catalog.",
            code="model_not_priced",
            param="model",
        )
    for target in targets:
        if target.served_models:
            continue
        price = price_now(
            organization_id=ctx.organization_id, provider=target.provider, model=model
        )
        if price is not None:
            return target, price
    raise GatewayError(
        400,
        f"The model `{model}` does not exist or no target serves it on this endpoint.",
        code="model_not_found",
        param="model",
    )


def serving(ctx: GroupContext, *, model: str, endpoint: str) -> list[tuple[Target, Price]]:
    """Every target that can serve `model` on `endpoint` now, with its price, by target id:
    the candidates of a failover (gateway/failover.py orders them)."""
    found = []
    for target in targets_of(ctx.organization_id):
        if endpoint not in ENDPOINTS[target.provider]:
            continue
        if target.served_models and model not in target.served_models:
            continue
        price = price_now(
            organization_id=ctx.organization_id, provider=target.provider, model=model
        )
        if price is not None:
            found.append((target, price))
    return found


def serving_price(organization_id: int, model: str) -> Price | None:
    """The price of `model` on the first of the organization's targets that serves it, read
    from the database now (not the request path's caches: a config apply has just written the
    targets in its transaction); None when none does."""
    now = timezone.now()
    for target in ProviderTarget.objects.filter(organization_id=organization_id).order_by(
        "target_id"
    ):
        if target.served_models and model not in target.served_models:
            continue
        price = price_for(
            organization_id=organization_id, provider=target.provider, model=model, at=now
        )
        if price is not None:
            return price
    return None


def serving_problem(organization_id: int, model: str) -> str | None:
    """Why none of the organization's targets can serve `model` (None: one can)."""
    if serving_price(organization_id, model) is None:
        return (
            f"no target of this organization serves {model} with a price in the catalog "
            "(list it in a target's served_models, or price it for a target's provider)"
        )
    return None


def wallets_of(ctx: GroupContext, user_ref: str) -> tuple:
    """The wallets that may pay for the request, in the order they are tried (user's, team's,
    organization's, those that exist; the team's alone for a strict department:
    wallets/cascade.py); empty when none exists."""
    key = (ctx.organization_id, ctx.department_id, user_ref)
    return _wallets.get(
        key,
        lambda: wallet_chain(
            organization=ctx.organization_id, department=ctx.department_id, user_ref=user_ref
        ),
    )


def wallet_of(ctx: GroupContext, user_ref: str):
    """The first wallet of the request's chain (the most specific that exists) or None."""
    chain = wallets_of(ctx, user_ref)
    return chain[0] if chain else None


def models_for(ctx: GroupContext) -> list[tuple[str, str]]:
    """(model, provider) pairs this group may call, sorted by model."""

    def load():
        now = timezone.now()
        found = {}
        for target in targets_of(ctx.organization_id):
            names = target.served_models
            if not names:
                names = (
                    Price.objects.filter(
                        Q(organization_id=ctx.organization_id) | Q(organization__isnull=True),
                        provider=target.provider,
                        effective_from__lte=now,
                    )
                    .filter(Q(effective_to__isnull=True) | Q(effective_to__gt=now))
                    .values_list("model", flat=True)
                    .distinct()
                )
            for name in names:
                found.setdefault(name, target.provider)
        return sorted(found.items())

    models = _model_lists.get(ctx.organization_id, load)
    if ctx.allowed_models:
        models = [m for m in models if m[0] in ctx.allowed_models]
    return models
