"""The config file's `cache` keys: the organization's defaults at the top level, a consumer
group's own under `consumer_groups[].cache`.

    cache:                          # the organization (every group inherits it)
      enabled: false
      ttl_seconds: 3600
      max_entry_bytes: 1048576
      scope: consumer_group         # consumer_group | organization | user
      excluded_models: []
      hit_price: 0                  # the organization's internal price of a hit; top level only
    consumer_groups:
      - name: support
        ...
        cache: {enabled: true, ttl_seconds: 600}

A key left out inherits: a group's from the organization's, the organization's from the
built-in default (cache off); `excluded_models` add up. A file without the top-level section
leaves the organization's settings as they are; a group without `cache` in a file with
`consumer_groups` inherits everything (its own settings are removed). Errors name the key path
and line, and nothing is applied (chargeback/config/apply.py). Registered from
GatewayConfig.ready(), like the `gateway` section.
"""

from decimal import Decimal, InvalidOperation

from yaml.nodes import Node, ScalarNode

from chargeback.config import register_group_key, register_section
from chargeback.config.report import ApplyContext
from chargeback.config.schema import (
    Field,
    Located,
    boolean,
    choice,
    fail,
    integer,
    list_of,
    mapping,
    string,
)
from chargeback.errors import ApplicationError, ConfigError
from gateway.response_cache.rules import MAX_ENTRY_BYTES, MAX_TTL_SECONDS, SCOPES
from gateway.response_cache.services import (
    MIN_ENTRY_BYTES,
    cache_policy_delete,
    cache_policy_of,
    cache_policy_set,
)

ORDER = 15  # after providers (10), before consumer_groups (20), which check against it


def hit_price(node: Node, path: str) -> Decimal:
    """An amount of money: a number or a quoted decimal, zero or more, at most 8 places."""
    if not isinstance(node, ScalarNode) or node.tag.rsplit(":", 1)[-1] not in {
        "int",
        "float",
        "str",
    }:
        fail(node, path, "expected an amount, e.g. 0.0002")
    try:
        value = Decimal(str(node.value).strip())
    except InvalidOperation:
        fail(node, path, f"{node.value!r} is not an amount")
    if not value.is_finite() or value < 0:
        fail(node, path, "must be zero or more")
    if value != value.quantize(Decimal("0.00000001")):
        fail(node, path, "at most 8 decimal places")
    return value


CACHE_FIELDS = {
    "enabled": Field(boolean),
    "ttl_seconds": Field(integer(minimum=1, maximum=MAX_TTL_SECONDS)),
    "max_entry_bytes": Field(integer(minimum=MIN_ENTRY_BYTES, maximum=MAX_ENTRY_BYTES)),
    "scope": Field(choice(*SCOPES)),
    "excluded_models": Field(list_of(string(max_length=200), unique=True), default=[]),
}
organization_cache_reader = mapping({**CACHE_FIELDS, "hit_price": Field(hit_price)})
group_cache_reader = mapping(CACHE_FIELDS)


def _apply(ctx: ApplyContext, located: Located, group=None) -> list[str]:
    """Set the row from the file's values; the names of what changed. A refusal becomes a
    ConfigError at the key it is about."""
    values = {key: located[key] for key in located.values}
    try:
        _, changed = cache_policy_set(
            organization=ctx.organization,
            consumer_group=group,
            actor=ctx.actor,
            via=ctx.via,
            **{**values, "scope": values["scope"] or ""},
        )
    except ApplicationError as exc:
        field, messages = next(iter(exc.field_errors().items()))
        path, line = located.where(field) if field else (located.path, None)
        raise ConfigError(messages[0], path=path, line=line) from None
    return changed


def apply_organization_cache(ctx: ApplyContext, located: Located) -> None:
    changed = _apply(ctx, located)
    if changed:
        ctx.report.add("changed", "cache", ctx.organization.slug, changed)
    else:
        ctx.report.same("cache", ctx.organization.slug)


def apply_group_cache(ctx: ApplyContext, group, located: Located | None) -> list[str]:
    if located is not None:
        return ["cache"] if _apply(ctx, located, group) else []
    policy = cache_policy_of(organization=ctx.organization, consumer_group=group)
    if policy is None:
        return []
    cache_policy_delete(policy=policy, actor=ctx.actor, via=ctx.via)
    return ["cache"]


register_section(
    "cache", parse=organization_cache_reader, apply=apply_organization_cache, order=ORDER
)
register_group_key("cache", parse=group_cache_reader, apply=apply_group_cache)
