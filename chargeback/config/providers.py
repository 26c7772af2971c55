"""The `providers` section: the upstream targets the gateway may call, and the keys upper apps
register inside it (`fallback`, `circuit_breaker`: gateway/config_routing.py)."""

import os
from dataclasses import dataclass

from chargeback import services
from chargeback.config.registry import subkeys
from chargeback.config.report import ApplyContext
from chargeback.config.schema import (
    ENV_NAME_RE,
    Field,
    Located,
    at_most_one,
    choice,
    fail,
    list_of,
    mapping,
    number,
    slug,
    string,
    url,
)
from chargeback.errors import ApplicationError, ConfigError
from chargeback.models import ProviderTarget

PROVIDERS = [value for value, _ in ProviderTarget.PROVIDERS]


@dataclass
class TargetSpec:
    target_id: str
    provider: str
    secret_env: str
    secret_name: str
    base_url: str
    models: list[str]
    timeouts: dict
    where: Located


@dataclass
class ProvidersSpec:
    targets: list[TargetSpec]  # in the file's order
    extras: dict  # registered keys present in the file: key -> parsed value
    where: Located


timeouts_reader = mapping(
    {
        "connect": Field(number(maximum=600)),
        "read": Field(number(maximum=3600)),
    }
)


def _one_source(ref: Located) -> None:
    if (ref["env"] is None) == (ref["secret"] is None):
        fail(ref.node, ref.path, "give either env: NAME or secret: NAME")


# `{env: NAME}`: a server variable the operator allows; `{secret: NAME}`: a stored secret.
secret_ref_reader = mapping(
    {
        "env": Field(string(pattern=ENV_NAME_RE, hint="an environment variable name")),
        "secret": Field(slug),
    },
    check=_one_source,
)


def _one_model_list(item: Located) -> None:
    at_most_one(
        item,
        ("models", "served_models", "model"),
        lambda first, second: (
            f"give one of models, served_models and model, not {first} and {second}"
        ),
    )


def _served_models(item: Located) -> list[str]:
    if item["model"] is not None:
        return [item["model"]]
    return item["models"] or item["served_models"] or []


target_reader = mapping(
    {
        "id": Field(slug, required=True),
        "provider": Field(choice(*PROVIDERS), required=True),
        "secret_key_ref": Field(secret_ref_reader),
        "base_url": Field(url),
        # Which models the target serves: `models`, `served_models` (the same list) or `model`
        # (just one); at most one of the three.
        "models": Field(list_of(string(max_length=200), unique=True)),
        "served_models": Field(list_of(string(max_length=200), unique=True)),
        "model": Field(string(max_length=200)),
        "timeouts": Field(timeouts_reader),
    },
    check=_one_model_list,
)


def parse_providers(node, path: str) -> ProvidersSpec:
    fields = {"targets": Field(list_of(target_reader), required=True)}
    registered = subkeys("providers")
    fields.update({sub.key: Field(sub.parse) for sub in registered})
    located = mapping(fields)(node, path)
    targets, seen = [], set()
    for item in located["targets"]:
        if item["id"] in seen:
            item_path, line = item.where("id")
            raise ConfigError(f"target id {item['id']!r} is used twice", path=item_path, line=line)
        seen.add(item["id"])
        timeouts = item["timeouts"]
        ref = item["secret_key_ref"]
        targets.append(
            TargetSpec(
                target_id=item["id"],
                provider=item["provider"],
                secret_env=(ref["env"] or "") if ref else "",
                secret_name=(ref["secret"] or "") if ref else "",
                base_url=item["base_url"] or "",
                models=_served_models(item),
                timeouts={k: v for k, v in timeouts.values.items() if v is not None}
                if timeouts
                else {},
                where=item,
            )
        )
    extras = {sub.key: located[sub.key] for sub in registered if sub.key in located.key_nodes}
    return ProvidersSpec(targets=targets, extras=extras, where=located)


def apply_providers(ctx: ApplyContext, spec: ProvidersSpec) -> None:
    _apply_targets(ctx, spec.targets)
    for sub in subkeys("providers"):
        sub.apply(ctx, spec.extras.get(sub.key), spec)


def _apply_targets(ctx: ApplyContext, targets: list[TargetSpec]) -> None:
    existing = {
        t.target_id: t for t in ProviderTarget.objects.filter(organization=ctx.organization)
    }
    for spec in targets:
        try:
            _, created, changed = services.target_upsert(
                organization=ctx.organization,
                target_id=spec.target_id,
                provider=spec.provider,
                base_url=spec.base_url,
                secret_env=spec.secret_env,
                secret_name=spec.secret_name,
                served_models=spec.models,
                options={"timeouts": spec.timeouts} if spec.timeouts else {},
                actor=ctx.actor,
                via=ctx.via,
            )
        except ApplicationError as exc:
            path, line = _target_field_where(spec, exc.field)
            raise ConfigError(exc.message, path=path, line=line) from None
        # Only after the organization was found to be allowed to name it: before, "is not set"
        # would tell a tenant which variables the server has.
        if spec.secret_env and not os.environ.get(spec.secret_env):
            where, line = spec.where.where("secret_key_ref")
            ctx.report.warnings.append(
                f"{where}.env (line {line}): {spec.secret_env} is not set in the server's "
                f"environment; the gateway cannot call target {spec.target_id} until it is"
            )
        if created:
            ctx.report.add("created", "target", spec.target_id)
        elif changed:
            ctx.report.add("changed", "target", spec.target_id, changed)
        else:
            ctx.report.same("target", spec.target_id)
    wanted = {spec.target_id for spec in targets}
    for target_id, target in existing.items():
        if target_id not in wanted:
            # No usage event points at a target row (they keep its id as text): safe to delete.
            services.target_delete(target=target, actor=ctx.actor, via=ctx.via)
            ctx.report.add("deleted", "target", target_id)


def _target_field_where(spec: TargetSpec, field: str) -> tuple[str, int]:
    if field == "base_url":
        return spec.where.where("base_url")
    where, line = spec.where.where("secret_key_ref")
    return f"{where}.{'env' if field == 'secret_env' else 'secret'}", line
