"""The `consumer_groups` section: department keys, their models and rate limits."""

import re
from dataclasses import dataclass, field

from chargeback import services
from chargeback.config.rate_limits import rate_limits_reader
from chargeback.config.registry import group_keys
from chargeback.config.report import ApplyContext
from chargeback.config.schema import (
    Field,
    Located,
    boolean,
    env_ref,
    fail,
    line_of,
    list_of,
    mapping,
    slug,
    string,
)
from chargeback.env_refs import env_ref_read
from chargeback.errors import ApplicationError, ConfigError
from chargeback.models import ConsumerGroup

# Longer than the stored prefix (12), so the prefix never is the whole key.
MIN_KEY_LENGTH = 16
KEY_RE = re.compile(r"^\S+$")


@dataclass
class GroupSpec:
    name: str
    raw_key: str
    key_env_ref: str
    wallet_team_id: str
    allowed_models: list[str]
    rpm_limit: int | None
    tpm_limit: int | None
    tpd_limit: int | None
    parallel_limit: int | None
    user_rate_limits: dict
    active: bool
    where: Located
    extra: dict = field(default_factory=dict)  # registered keys (registry.register_group_key)


def _one_key(group: Located) -> None:
    has_key, has_ref = group["api_key"] is not None, group["api_key_ref"] is not None
    if has_key and has_ref:
        path, line = group.where("api_key_ref")
        raise ConfigError("give either api_key or api_key_ref, not both", path=path, line=line)
    if not has_key and not has_ref:
        path = f"{group.path}.api_key"
        raise ConfigError(
            "required key is missing (api_key, or api_key_ref: {env: NAME})",
            path=path,
            line=line_of(group.node),
        )


key_reader = string(pattern=KEY_RE, hint="no spaces", max_length=200)


def _api_key(node, path: str) -> str:
    value = key_reader(node, path)
    if len(value) < MIN_KEY_LENGTH:
        fail(node, path, f"too short: use at least {MIN_KEY_LENGTH} characters")
    return value


group_reader = mapping(
    {
        "name": Field(slug, required=True),
        "api_key": Field(_api_key),
        "api_key_ref": Field(env_ref()),
        "wallet_team_id": Field(slug, required=True),
        "allowed_models": Field(list_of(string(max_length=200), unique=True), default=[]),
        "rate_limits": Field(rate_limits_reader, default={}),
        "active": Field(boolean, default=True),
    },
    check=_one_key,
    more=lambda: {key.key: Field(key.parse) for key in group_keys()},
)


def parse_consumer_groups(node, path: str) -> list[GroupSpec]:
    groups, names, keys = [], {}, {}
    for item in list_of(group_reader)(node, path):
        if item["name"] in names:
            where, line = item.where("name")
            raise ConfigError(
                f"consumer group {item['name']!r} is already defined on line {names[item['name']]}",
                path=where,
                line=line,
            )
        names[item["name"]] = item.where("name")[1]
        raw = item["api_key"]
        if raw is not None:
            if raw in keys:
                _same_key(item, "api_key", keys[raw])
            keys[raw] = item["name"]
        limits = item["rate_limits"]
        groups.append(
            GroupSpec(
                name=item["name"],
                raw_key=raw or "",  # an api_key_ref is read when applying (_resolve_keys)
                key_env_ref=item["api_key_ref"] or "",
                wallet_team_id=item["wallet_team_id"],
                allowed_models=item["allowed_models"],
                rpm_limit=limits.get("rpm"),
                tpm_limit=limits.get("tpm"),
                tpd_limit=limits.get("tpd"),
                parallel_limit=limits.get("parallel"),
                user_rate_limits=limits.get("per_user", {}),
                active=item["active"],
                where=item,
                extra={key.key: item[key.key] for key in group_keys()},
            )
        )
    return groups


def _same_key(item: Located, key_field: str, other: str):
    where, line = item.where(key_field)
    raise ConfigError(
        f"the same key is already given to consumer group {other!r}; give each group its own key",
        path=where,
        line=line,
    )


def _resolve_keys(ctx: ApplyContext, groups: list[GroupSpec]) -> None:
    """Read each `api_key_ref` from the environment, for this organization only: a variable the
    operator does not allow it is refused before it is read (chargeback/env_refs.py)."""
    keys = {spec.raw_key: spec.name for spec in groups if not spec.key_env_ref}
    for spec in groups:
        if not spec.key_env_ref:
            continue
        where, line = spec.where.where("api_key_ref")
        try:
            raw = env_ref_read(
                organization=ctx.organization, name=spec.key_env_ref, field="key_env_ref"
            )
        except ApplicationError as exc:
            raise ConfigError(exc.message, path=f"{where}.env", line=line) from None
        if not raw:
            raise ConfigError(
                f"environment variable {spec.key_env_ref} is not set",
                path=f"{where}.env",
                line=line,
            )
        if len(raw) < MIN_KEY_LENGTH or not KEY_RE.match(raw):
            raise ConfigError(
                f"the key in {spec.key_env_ref} must be at least {MIN_KEY_LENGTH} characters, "
                "no spaces",
                path=f"{where}.env",
                line=line,
            )
        if raw in keys:
            _same_key(spec.where, "api_key_ref", keys[raw])
        keys[raw] = spec.name
        spec.raw_key = raw


def apply_consumer_groups(ctx: ApplyContext, groups: list[GroupSpec]) -> None:
    _resolve_keys(ctx, groups)
    departments = {}
    for spec in groups:
        if spec.wallet_team_id not in departments:
            department, created = services.department_get_or_create(
                organization=ctx.organization,
                team_id=spec.wallet_team_id,
                actor=ctx.actor,
                via=ctx.via,
            )
            departments[spec.wallet_team_id] = department
            if created:
                ctx.report.add("created", "department", spec.wallet_team_id)
        try:
            group, created, changed = services.consumer_group_upsert(
                organization=ctx.organization,
                name=spec.name,
                raw_key=spec.raw_key,
                key_env_ref=spec.key_env_ref,
                department=departments[spec.wallet_team_id],
                allowed_models=spec.allowed_models,
                rpm_limit=spec.rpm_limit,
                tpm_limit=spec.tpm_limit,
                tpd_limit=spec.tpd_limit,
                parallel_limit=spec.parallel_limit,
                user_rate_limits=spec.user_rate_limits,
                is_active=spec.active,
                actor=ctx.actor,
                via=ctx.via,
            )
        except ApplicationError as exc:
            where, line = spec.where.where("api_key" if not spec.key_env_ref else "api_key_ref")
            raise ConfigError(exc.message, path=where, line=line) from None
        for key in group_keys():
            changed = [*changed, *key.apply(ctx, group, spec.extra.get(key.key))]
        if created:
            ctx.report.add("created", "consumer_group", spec.name)
        elif changed:
            ctx.report.add("changed", "consumer_group", spec.name, _field_names(changed))
        else:
            ctx.report.same("consumer_group", spec.name)
    # A group taken out of the file is switched off, not deleted: its usage history points at
    # it, and switching it back on is one line in the file.
    wanted = {spec.name for spec in groups}
    leftovers = ConsumerGroup.objects.filter(organization=ctx.organization, is_active=True).exclude(
        name__in=wanted
    )
    for group in leftovers.order_by("name"):
        services.consumer_group_deactivate(group=group, actor=ctx.actor, via=ctx.via)
        ctx.report.add("deactivated", "consumer_group", group.name, ["not in the file"])


_FIELD_NAMES = {
    "department": "wallet_team_id",
    "key_env_ref": "api_key_ref",
    "rpm_limit": "rate_limits.rpm",
    "tpm_limit": "rate_limits.tpm",
    "tpd_limit": "rate_limits.tokens_per_day",
    "parallel_limit": "rate_limits.max_parallel_requests",
    "user_rate_limits": "rate_limits.per_user",
    "is_active": "active",
}


def _field_names(changed: list[str]) -> list[str]:
    """Report changes with the names the file uses."""
    return [_FIELD_NAMES.get(name, name) for name in changed]
