"""The config file's optional `gateway:` section: how the gateway behaves for this organization.

    gateway:
      rate_limits_unavailable: open    # or closed; default open

`rate_limits_unavailable` is what happens to a request of a consumer group with `rate_limits`
while the rate-limit store (Redis) cannot be reached: `open` serves it without limits (a warning
in the log and a counter, gateway/ratelimit.py), `closed` refuses it with a 503 and
`retry-after`. Never a 500 either way. A key left out of the section means its default, so
deleting the line resets it; a file without the section leaves the organization as it is.

Registered from `GatewayConfig.ready()`, like the budgets section.
"""

from yaml.nodes import Node

from chargeback import services
from chargeback.config import register_section
from chargeback.config.report import ApplyContext
from chargeback.config.schema import Field, choice, mapping
from chargeback.models import Organization

ORDER = 40  # after cost_tracking (30); reads nothing the others create
CHOICES = Organization.RateLimitsUnavailable

gateway_reader = mapping(
    {
        "rate_limits_unavailable": Field(choice(*CHOICES.values), default=CHOICES.OPEN),
    }
)


def parse_gateway(node: Node, path: str) -> dict:
    return dict(gateway_reader(node, path).values)


def apply_gateway(ctx: ApplyContext, value: dict) -> None:
    changed = services.organization_rate_limits_unavailable_set(
        organization=ctx.organization,
        value=value["rate_limits_unavailable"],
        actor=ctx.actor,
        via=ctx.via,
    )
    if changed:
        ctx.report.add("changed", "gateway", ctx.organization.slug, ["rate_limits_unavailable"])
    else:
        ctx.report.same("gateway", ctx.organization.slug)


register_section("gateway", parse=parse_gateway, apply=apply_gateway, order=ORDER)
