"""The config file's `routing_policies`: per consumer group or department, which model a
request really gets (gateway/policies.py applies them).

    routing_policies:
      - name: engineering-routine
        consumer_groups: [engineering]     # and/or departments: [team_engineering];
                                           # neither: every group of the organization
        aliases: {drafting: gpt-4o-mini}   # `model: drafting` is sent as gpt-4o-mini
        max_price_per_mtok: 5.00           # a model whose input or output price is higher...
        on_over_price: downgrade           # ...is refused (400, the default) or downgraded
        premium_groups: [eng-leads]        # only these groups may call premium models
        premium_monthly_share_cap: 30      # % of the department's month spend on premium models
        downgrade_to: gpt-4o-mini          # what a downgraded request gets; without it, a 400

One policy applies to a request: the one naming its consumer group, else the one naming its
department, else the one naming neither. The section is not managed when it is not in the file;
`routing_policies: []` removes them all.
"""

from decimal import Decimal, InvalidOperation

from yaml.nodes import Node, ScalarNode, SequenceNode

from chargeback.config import register_section
from chargeback.config.report import ApplyContext
from chargeback.config.schema import Field, Located, choice, fail, line_of, mapping, slug
from chargeback.errors import ConfigError
from chargeback.models import ConsumerGroup, Department
from chargeback.money import PRICE_PLACES
from gateway.config_routing import ModelMap, model_map, model_name, settings_of
from gateway.routing import serving_price, serving_problem
from gateway.services import gateway_settings_update

ORDER = 46  # after the groups (20), which may create the departments named here
RULES = ("aliases", "max_price_per_mtok", "premium_groups", "premium_monthly_share_cap")


class Names(list):
    """Slugs with the line of each, for errors found when applying."""

    lines: list


def names(node: Node, path: str) -> Names:
    if not isinstance(node, SequenceNode):
        fail(node, path, "expected a list")
    found = Names()
    found.lines = []
    for index, child in enumerate(node.value):
        value = slug(child, f"{path}[{index}]")
        if value in found:
            fail(child, f"{path}[{index}]", f"{value!r} is listed twice")
        found.append(value)
        found.lines.append(line_of(child))
    return found


def decimal(*, places: int, maximum: Decimal | None = None):
    """A positive number read from the YAML text itself (never through float)."""

    def read(node: Node, path: str) -> Decimal:
        if not isinstance(node, ScalarNode) or node.tag.rsplit(":", 1)[-1] not in {"int", "float"}:
            fail(node, path, "expected a number")
        try:
            value = Decimal(node.value.replace("_", ""))
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite() or value <= 0:
            fail(node, path, "must be a number greater than 0")
        if maximum is not None and value > maximum:
            fail(node, path, f"must be at most {maximum}")
        if value != round(value, places):
            fail(node, path, f"at most {places} decimal places")
        return value

    return read


def aliases(node: Node, path: str) -> ModelMap:
    found = model_map(node, path)
    for alias, targets in found.items():
        if len(targets) != 1:
            fail(node, f"{path}.{alias}", "an alias names one model")
    return found


def _check(policy: Located) -> None:
    if not any(policy[rule] is not None for rule in RULES):
        fail(policy.node, policy.path, f"give at least one of {', '.join(RULES)}")
    if policy["on_over_price"] == "downgrade" and policy["downgrade_to"] is None:
        path, line = policy.where("on_over_price")
        raise ConfigError(
            "downgrade needs downgrade_to (the model to send instead)", path=path, line=line
        )
    if policy["on_over_price"] is not None and policy["max_price_per_mtok"] is None:
        path, line = policy.where("on_over_price")
        raise ConfigError("on_over_price needs max_price_per_mtok", path=path, line=line)


policy_reader = mapping(
    {
        "name": Field(slug, required=True),
        "consumer_groups": Field(names),
        "departments": Field(names),
        "aliases": Field(aliases),
        "max_price_per_mtok": Field(decimal(places=PRICE_PLACES)),
        "on_over_price": Field(choice("refuse", "downgrade")),
        "premium_groups": Field(names),
        "premium_monthly_share_cap": Field(decimal(places=2, maximum=Decimal(100))),
        "downgrade_to": Field(model_name),
    },
    check=_check,
)


def parse_routing_policies(node: Node, path: str) -> list[Located]:
    if not isinstance(node, SequenceNode):
        fail(node, path, "expected a list")
    policies, seen = [], {}
    for index, child in enumerate(node.value):
        policy = policy_reader(child, f"{path}[{index}]")
        if policy["name"] in seen:
            where, line = policy.where("name")
            message = f"policy {policy['name']!r} is already defined on line {seen[policy['name']]}"
            raise ConfigError(message, path=where, line=line)
        seen[policy["name"]] = policy.where("name")[1]
        policies.append(policy)
    return policies


def _scope_check(ctx: ApplyContext, policies: list[Located]) -> None:
    """Every group and department named exists, and one policy at most applies to each."""
    org = ctx.organization
    groups = set(ConsumerGroup.objects.filter(organization=org).values_list("name", flat=True))
    teams = set(Department.objects.filter(organization=org).values_list("team_id", flat=True))
    owners = {}
    for policy in policies:
        scopes = [("consumer_groups", groups), ("departments", teams), ("premium_groups", groups)]
        for key, known in scopes:
            listed = policy[key] or Names()
            for index, name in enumerate(listed):
                path, line = f"{policy.path}.{key}[{index}]", listed.lines[index]
                kind = "department" if key == "departments" else "consumer group"
                if name not in known:
                    raise ConfigError(
                        f"no {kind} {name!r} in this organization", path=path, line=line
                    )
                if key == "premium_groups":
                    continue
                if (kind, name) in owners:
                    message = f"{kind} {name!r} is already in policy {owners[(kind, name)]!r}"
                    raise ConfigError(message, path=path, line=line)
                owners[(kind, name)] = policy["name"]
        if not policy["consumer_groups"] and not policy["departments"]:
            if ("organization", "") in owners:
                where, line = policy.where("name")
                message = (
                    f"policy {owners[('organization', '')]!r} already applies to every group; "
                    "name the consumer_groups or departments of this one"
                )
                raise ConfigError(message, path=where, line=line)
            owners[("organization", "")] = policy["name"]


def _models_check(ctx: ApplyContext, policy: Located) -> None:
    org_id = ctx.organization.pk
    for alias, (model,) in (policy["aliases"] or {}).items():
        problem = serving_problem(org_id, model)
        if problem:
            raise ConfigError(
                problem, path=f"{policy.path}.aliases.{alias}", line=policy["aliases"].lines[alias]
            )
    model = policy["downgrade_to"]
    if model is None:
        return
    path, line = policy.where("downgrade_to")
    problem = serving_problem(org_id, model)
    if problem:
        raise ConfigError(problem, path=path, line=line)
    price = serving_price(org_id, model)
    cap = policy["max_price_per_mtok"]
    if cap is not None and max(price.input_per_mtok, price.output_per_mtok) > cap:
        message = f"{model} costs more than max_price_per_mtok ({cap}) itself"
        raise ConfigError(message, path=path, line=line)
    premium_rules = policy["premium_groups"] is not None or policy["premium_monthly_share_cap"]
    if premium_rules and price.premium:
        raise ConfigError(f"{model} is a premium model itself", path=path, line=line)


def _stored(policy: Located) -> dict:
    def text(value):
        return None if value is None else str(value)

    return {
        "name": policy["name"],
        "consumer_groups": list(policy["consumer_groups"] or []),
        "departments": list(policy["departments"] or []),
        "aliases": {alias: models[0] for alias, models in (policy["aliases"] or {}).items()},
        "max_price_per_mtok": text(policy["max_price_per_mtok"]),
        "on_over_price": policy["on_over_price"] or "refuse",
        "premium_groups": None
        if policy["premium_groups"] is None
        else list(policy["premium_groups"]),
        "premium_monthly_share_cap": text(policy["premium_monthly_share_cap"]),
        "downgrade_to": policy["downgrade_to"] or "",
    }


def apply_routing_policies(ctx: ApplyContext, policies: list[Located]) -> None:
    _scope_check(ctx, policies)
    for policy in policies:
        _models_check(ctx, policy)
    wanted = [_stored(policy) for policy in policies]
    before = {p["name"]: p for p in settings_of(ctx.organization).routing_policies}
    if gateway_settings_update(
        organization=ctx.organization, actor=ctx.actor, via=ctx.via, routing_policies=wanted
    ):
        after = {p["name"]: p for p in wanted}
        changed = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
        ctx.report.add("changed", "routing_policies", ctx.organization.slug, changed)
    elif wanted:
        ctx.report.same("routing_policies", ctx.organization.slug)


register_section(
    "routing_policies", parse=parse_routing_policies, apply=apply_routing_policies, order=ORDER
)
