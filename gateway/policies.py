"""Routing policies (the config file's `routing_policies`, gateway/config_policies.py): which
model a request of a consumer group or department really gets.

Rules, in this order: an alias names a model (`drafting` → gpt-4o-mini); a model priced above
`max_price_per_mtok` (its input or its output price) is refused or downgraded (`on_over_price`);
a premium model (the catalog's `premium` flag) is only for `premium_groups`, and only while the
department's premium spend this month is below `premium_monthly_share_cap` percent of its spend;
the others get `downgrade_to`, or a 400 saying which policy refused and why. The usage event
records the model requested (as sent), the policy and rule that changed it ("name:rule"), and
what that saved: the usage at the price of the model it replaced, minus the cost.

The policy of a group is decided when its key is loaded (gateway/auth.py); a group without one
costs nothing here. The premium share cap reads the department's month spend, once per
KT_POLICY_SHARE_SECONDS per process and department, and only for premium models.
"""

import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from chargeback.models import Organization
from chargeback.periods import local_today, month_start
from gateway.errors import GatewayError
from gateway.selectors import premium_spend_share

ALIAS, MAX_PRICE, PREMIUM_GROUP, PREMIUM_SHARE = (
    "alias",
    "max_price",
    "premium_group",
    "premium_share_cap",
)


@dataclass(frozen=True)
class Policy:
    name: str
    aliases: tuple = ()  # ((alias, model), ...)
    max_price: Decimal | None = None
    downgrade_over_price: bool = False
    premium_groups: frozenset | None = None  # None: every group of the policy may
    premium_share_cap: Decimal | None = None  # percent of the department's month spend
    downgrade_to: str = ""

    @classmethod
    def of(cls, stored: dict) -> "Policy":
        def decimal(value):
            return None if value is None else Decimal(value)

        groups = stored.get("premium_groups")
        return cls(
            name=stored["name"],
            aliases=tuple((stored.get("aliases") or {}).items()),
            max_price=decimal(stored.get("max_price_per_mtok")),
            downgrade_over_price=stored.get("on_over_price") == "downgrade",
            premium_groups=None if groups is None else frozenset(groups),
            premium_share_cap=decimal(stored.get("premium_monthly_share_cap")),
            downgrade_to=stored.get("downgrade_to") or "",
        )


def policy_for(stored: list, *, group: str, team_id: str) -> Policy | None:
    """The policy of a group: the one naming it, else the one naming its department, else the
    one naming neither; None without any."""
    by_department = everyone = None
    for item in stored:
        if group in item.get("consumer_groups", ()):
            return Policy.of(item)
        if team_id and team_id in item.get("departments", ()) and by_department is None:
            by_department = item
        if not item.get("consumer_groups") and not item.get("departments") and everyone is None:
            everyone = item
    chosen = by_department or everyone
    return Policy.of(chosen) if chosen is not None else None


@dataclass(frozen=True)
class Routed:
    """What a policy decided: the model to send, its first target and price, the rule that
    changed the model ("name:rule", "" when none did) and the price of the model it replaced
    (None: nothing to compare with, as for an alias)."""

    model: str
    target: object
    price: object
    policy: str = ""
    replaced: object = None


def policy_route(ctx, *, model: str, first) -> Routed:
    """Apply the group's policy to `model`; `first(model)` gives the (target, price) a model is
    routed to. Raises GatewayError 400 when the policy refuses the request."""
    policy = ctx.policy
    label, replaced = "", None
    for alias, aliased in policy.aliases:
        if alias == model:
            model, label = aliased, f"{policy.name}:{ALIAS}"
            break
    target, price = first(model)
    rule = _broken_rule(ctx, policy, price)
    if rule is None:
        return Routed(model, target, price, label)
    if not policy.downgrade_to or (rule == MAX_PRICE and not policy.downgrade_over_price):
        raise _refusal(ctx, policy, rule, model, price)
    replaced = price
    target, price = first(policy.downgrade_to)
    if _broken_rule(ctx, policy, price) is not None:
        raise GatewayError(
            400,
            f"Routing policy {policy.name} downgrades {model} to {policy.downgrade_to}, which "
            "its own rules refuse now (its price changed); ask an administrator to fix the "
            "policy.",
            code="policy_downgrade_unavailable",
            param="model",
        )
    return Routed(policy.downgrade_to, target, price, f"{policy.name}:{rule}", replaced)


def _broken_rule(ctx, policy: Policy, price) -> str | None:
    if policy.max_price is not None and max(price.input_per_mtok, price.output_per_mtok) > (
        policy.max_price
    ):
        return MAX_PRICE
    if not price.premium:
        return None
    if policy.premium_groups is not None and ctx.group_name not in policy.premium_groups:
        return PREMIUM_GROUP
    capped = policy.premium_share_cap is not None and ctx.department_id is not None
    if capped and _premium_share(ctx) * 100 >= policy.premium_share_cap:
        return PREMIUM_SHARE
    return None


def _refusal(ctx, policy: Policy, rule: str, model: str, price) -> GatewayError:
    if rule == MAX_PRICE:
        highest = max(price.input_per_mtok, price.output_per_mtok)
        message = (
            f"The model `{model}` costs {highest.normalize():f} per million tokens, above the "
            f"{policy.max_price.normalize():f} that routing policy {policy.name} allows "
            f"consumer group {ctx.group_name}."
        )
        code = "model_over_price_cap"
    elif rule == PREMIUM_GROUP:
        message = (
            f"The model `{model}` is a premium model, which routing policy {policy.name} "
            f"allows only to consumer groups {', '.join(sorted(policy.premium_groups))}."
        )
        code = "premium_model_not_allowed"
    else:
        message = (
            f"The model `{model}` is a premium model, and premium models already took "
            f"{policy.premium_share_cap.normalize():f}% of this department's spend this month, "
            f"the cap of routing policy {policy.name}."
        )
        code = "premium_share_cap_reached"
    return GatewayError(400, message, code=code, param="model")


_shares: dict[tuple[int, int], tuple[float, Decimal]] = {}


def _premium_share(ctx) -> Decimal:
    """The department's premium share of its spend this month (0..1), cached per process."""
    key = (ctx.organization_id, ctx.department_id)
    now = time.monotonic()
    hit = _shares.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    organization = Organization.objects.get(pk=ctx.organization_id)
    share = premium_spend_share(
        organization=organization,
        department_id=ctx.department_id,
        month=month_start(local_today(organization)),
    )
    if len(_shares) > 10_000:
        _shares.clear()
    _shares[key] = (now + settings.KT_POLICY_SHARE_SECONDS, share)
    return share


def policy_shares_clear() -> None:
    """Forget the cached premium shares (tests)."""
    _shares.clear()
