"""The config file's failover keys, read and stored by the gateway (gateway/failover.py uses
them):

    providers:
      targets: [...]
      fallback:                      # off when left out
        strategy: ordered            # ordered | cost | latency | round-robin
        max_retries: 2               # further targets tried after the first, 0-10
        retry_on: [5xx, timeout, rate_limit]
      circuit_breaker:               # off when left out
        failure_threshold: 5         # failures within window_seconds open a target's circuit
        window_seconds: 60
        cooldown_seconds: 30         # then one probe request (half_open_requests) is let through
        half_open_requests: 1
    failover:
      model_mapping:                 # when no target of gpt-4o answers, gpt-4o-mini's are tried
        gpt-4o: gpt-4o-mini
        claude-sonnet-4: [gpt-4o, gpt-4o-mini]

`fallback` and `circuit_breaker` are keys of the `providers` section (chargeback/config
registers them for us), so a file with `providers:` but without one of them switches it off;
`failover` is a section of its own, not managed when it is not in the file.
"""

from yaml.nodes import MappingNode, Node, ScalarNode

from chargeback.config import register_section
from chargeback.config.registry import register_subkey
from chargeback.config.report import ApplyContext
from chargeback.config.schema import Field, choice, fail, integer, list_of, mapping, number, string
from chargeback.errors import ConfigError
from gateway.models import GatewaySettings
from gateway.routing import serving_problem
from gateway.services import gateway_settings_update

STRATEGIES = ("ordered", "cost", "latency", "round-robin")
RETRY_ON = ("5xx", "timeout", "rate_limit")
ORDER = 45  # after the providers (10) and groups (20): model checks read the targets

model_name = string(max_length=200)

fallback_reader = mapping(
    {
        "strategy": Field(choice(*STRATEGIES), default="ordered"),
        "max_retries": Field(integer(minimum=0, maximum=10), default=2),
        "retry_on": Field(list_of(choice(*RETRY_ON), unique=True), default=list(RETRY_ON)),
    }
)

circuit_breaker_reader = mapping(
    {
        "failure_threshold": Field(integer(minimum=1, maximum=10_000), default=5),
        "window_seconds": Field(number(maximum=86_400), default=60.0),
        "cooldown_seconds": Field(number(maximum=86_400), default=30.0),
        "half_open_requests": Field(integer(minimum=1, maximum=1_000), default=1),
    }
)


def settings_of(organization) -> GatewaySettings:
    """The organization's stored settings (an unsaved empty row when it has none)."""
    row = GatewaySettings.objects.filter(organization=organization).first()
    return row or GatewaySettings(organization=organization)


def _update(ctx: ApplyContext, kind: str, field: str, value, *, configured: bool) -> None:
    if gateway_settings_update(
        organization=ctx.organization, actor=ctx.actor, via=ctx.via, **{field: value}
    ):
        ctx.report.add("changed", kind, ctx.organization.slug)
    elif configured:  # a feature that is off and stays off is not worth a line
        ctx.report.same(kind, ctx.organization.slug)


# --- providers.fallback, providers.circuit_breaker ---------------------------------------------


def parse_fallback(node: Node, path: str) -> dict:
    return dict(fallback_reader(node, path).values)


def apply_fallback(ctx: ApplyContext, value: dict | None, providers) -> None:
    if value is not None:
        # `ordered` means the file's order of the targets: kept with the setting.
        value = {**value, "order": [target.target_id for target in providers.targets]}
    _update(ctx, "providers.fallback", "fallback", value or {}, configured=value is not None)


def parse_circuit_breaker(node: Node, path: str) -> dict:
    return dict(circuit_breaker_reader(node, path).values)


def apply_circuit_breaker(ctx: ApplyContext, value: dict | None, providers) -> None:
    _update(
        ctx,
        "providers.circuit_breaker",
        "circuit_breaker",
        value or {},
        configured=value is not None,
    )


# --- failover ----------------------------------------------------------------------------------


class ModelMap(dict):
    """`{model: [fallback models]}`, with the line of each model in the file (`lines`)."""

    lines: dict
    path: str = ""


def model_map(node: Node, path: str) -> ModelMap:
    """`{model: fallback model or [models]}`, each model a string; stored as lists."""
    if not isinstance(node, MappingNode):
        fail(node, path, "expected a mapping of model names")
    result, lines = ModelMap(), {}
    for key_node, value_node in node.value:
        key = model_name(key_node, path)
        key_path = f"{path}.{key}"
        if key in result:
            fail(key_node, key_path, f"{key!r} is mapped twice (first on line {lines[key]})")
        lines[key] = key_node.start_mark.line + 1
        if isinstance(value_node, ScalarNode):
            targets = [model_name(value_node, key_path)]
        else:
            targets = list_of(model_name, unique=True)(value_node, key_path)
        if not targets:
            fail(value_node, key_path, "name at least one model")
        if key in targets:
            fail(value_node, key_path, f"{key!r} cannot fall back to itself")
        result[key] = targets
    result.lines = lines
    return result


failover_reader = mapping({"model_mapping": Field(model_map)})


def parse_failover(node: Node, path: str) -> ModelMap:
    located = failover_reader(node, path)
    found = located["model_mapping"]
    if found is None:
        found = ModelMap()
        found.lines = {}
    found.path = f"{path}.model_mapping"
    return found


def apply_failover(ctx: ApplyContext, value: ModelMap) -> None:
    for model, fallbacks in value.items():
        for fallback in fallbacks:
            problem = serving_problem(ctx.organization.pk, fallback)
            if problem:
                raise ConfigError(problem, path=f"{value.path}.{model}", line=value.lines[model])
    _update(ctx, "failover.model_mapping", "model_mapping", dict(value), configured=True)


register_subkey("providers", "fallback", parse=parse_fallback, apply=apply_fallback)
register_subkey(
    "providers", "circuit_breaker", parse=parse_circuit_breaker, apply=apply_circuit_breaker
)
register_section("failover", parse=parse_failover, apply=apply_failover, order=ORDER)
