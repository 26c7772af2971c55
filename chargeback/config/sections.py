"""The built-in sections: `providers` (chargeback/config/providers.py), `consumer_groups`
(chargeback/config/groups.py), `departments` (chargeback/config/departments.py),
`cost_tracking` (here) and `rate_limit_defaults`
(chargeback/config/rate_limits.py)."""

from chargeback import services
from chargeback.config.departments import apply_departments, parse_departments
from chargeback.config.groups import apply_consumer_groups, parse_consumer_groups
from chargeback.config.providers import apply_providers, parse_providers
from chargeback.config.rate_limits import apply_rate_limit_defaults, parse_rate_limit_defaults
from chargeback.config.registry import register_section
from chargeback.config.report import ApplyContext
from chargeback.config.schema import Field, boolean, choice, mapping

# --- cost tracking -----------------------------------------------------------------------------


cost_tracking_reader = mapping(
    {
        "enabled": Field(boolean, default=True),
        "wallet_enforcement": Field(boolean, default=True),
        "allocation_policy": Field(choice("auto_fund", "strict"), default="auto_fund"),
    }
)


def parse_cost_tracking(node, path: str) -> dict:
    return dict(cost_tracking_reader(node, path).values)


def apply_cost_tracking(ctx: ApplyContext, value: dict) -> None:
    changed = services.organization_cost_tracking_set(
        organization=ctx.organization,
        enabled=value["enabled"],
        wallet_enforcement=value["wallet_enforcement"],
        allocation_policy=value["allocation_policy"],
        actor=ctx.actor,
        via=ctx.via,
    )
    names = {
        "cost_tracking_enabled": "enabled",
        "wallet_enforcement": "wallet_enforcement",
        "allocation_policy": "allocation_policy",
    }
    if changed:
        ctx.report.add(
            "changed", "cost_tracking", ctx.organization.slug, [names[c] for c in changed]
        )
    else:
        ctx.report.same("cost_tracking", ctx.organization.slug)


register_section("providers", parse=parse_providers, apply=apply_providers, order=10)
register_section(
    "consumer_groups", parse=parse_consumer_groups, apply=apply_consumer_groups, order=20
)
register_section("departments", parse=parse_departments, apply=apply_departments, order=25)
register_section("cost_tracking", parse=parse_cost_tracking, apply=apply_cost_tracking, order=30)
register_section(
    "rate_limit_defaults",
    parse=parse_rate_limit_defaults,
    apply=apply_rate_limit_defaults,
    order=35,
)
