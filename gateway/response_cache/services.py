"""Writes of the response cache's settings (gateway.models.ResponseCachePolicy): the config
file's `cache` sections and the admin both come here, so they refuse the same things in the
same words and leave the same audit rows (`cache_policy.set`, `cache_policy.delete`).

Gateway processes see a change within KT_KEY_CACHE_SECONDS (the settings travel with the
group's key, gateway/auth.py).
"""

from decimal import Decimal

from django.db import transaction

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError, Conflict, ValidationFailed, collect_errors
from chargeback.models import ConsumerGroup, Organization
from chargeback.money import ZERO, quantize
from gateway.models import ResponseCachePolicy
from gateway.response_cache.rules import MAX_ENTRY_BYTES, MAX_TTL_SECONDS, SCOPES, Scope

FIELDS = (
    "enabled",
    "ttl_seconds",
    "max_entry_bytes",
    "scope",
    "excluded_models",
    "hit_price",
)
MIN_ENTRY_BYTES = 1024


def _state(policy: ResponseCachePolicy) -> dict:
    return {name: getattr(policy, name) for name in FIELDS}


def cache_policy_problems(
    *, organization: Organization, consumer_group: ConsumerGroup | None, values: dict
) -> dict:
    """{field: [messages]} for settings that cannot be saved (empty: they can)."""
    errors = collect_errors()
    ttl, size = values.get("ttl_seconds"), values.get("max_entry_bytes")
    if ttl is not None and not 1 <= ttl <= MAX_TTL_SECONDS:
        errors.add("ttl_seconds", f"must be between 1 and {MAX_TTL_SECONDS} (30 days)")
    if size is not None and not MIN_ENTRY_BYTES <= size <= MAX_ENTRY_BYTES:
        errors.add(
            "max_entry_bytes", f"must be between {MIN_ENTRY_BYTES} and {MAX_ENTRY_BYTES} (16 MiB)"
        )
    scope = values.get("scope") or ""
    if scope and scope not in SCOPES:
        errors.add("scope", f"unknown scope {scope!r} (expected one of: {', '.join(SCOPES)})")
    models = values.get("excluded_models") or []
    if not isinstance(models, list) or not all(
        isinstance(m, str) and m.strip() and len(m) <= 200 for m in models
    ):
        errors.add("excluded_models", "a list of model names")
    elif len(set(models)) != len(models):
        errors.add("excluded_models", "a model is listed twice")
    price = values.get("hit_price")
    if price is not None:
        if consumer_group is not None:
            errors.add("hit_price", "the cache price is the organization's: set it there")
        elif not isinstance(price, Decimal) or not price.is_finite() or price < ZERO:
            errors.add("hit_price", "must be zero or more")
        elif quantize(price) != price:
            errors.add("hit_price", "at most 8 decimal places")
    if consumer_group is not None:
        if consumer_group.organization_id != organization.pk:
            errors.add("consumer_group", "not a consumer group of this organization")
        elif scope == Scope.ORGANIZATION and not _organization_shares(organization):
            errors.add(
                "scope",
                "the organization does not share cache entries between its groups: set the "
                "organization's cache scope to organization first",
            )
    return dict(errors)


def _organization_shares(organization: Organization) -> bool:
    row = ResponseCachePolicy.objects.filter(
        organization=organization, consumer_group__isnull=True
    ).first()
    return row is not None and row.scope == Scope.ORGANIZATION


def cache_policy_set(
    *,
    organization: Organization,
    consumer_group: ConsumerGroup | None = None,
    enabled: bool | None = None,
    ttl_seconds: int | None = None,
    max_entry_bytes: int | None = None,
    scope: str = "",
    excluded_models: list[str] | None = None,
    hit_price: Decimal | None = None,
    new: bool = False,
    actor: str,
    via: str,
) -> tuple[ResponseCachePolicy, list[str]]:
    """Make the organization's (or the group's) cache settings exactly these (None or empty:
    inherit); return the row and the names of the fields that changed (none: nothing written,
    no audit row). Refused with ValidationFailed naming each field; with `new` (the admin's
    add form) a Conflict when the row exists, and an ApplicationError when it would say
    nothing."""
    values = {
        "enabled": enabled,
        "ttl_seconds": ttl_seconds,
        "max_entry_bytes": max_entry_bytes,
        "scope": scope or "",
        "excluded_models": list(excluded_models or []),
        "hit_price": hit_price,
    }
    errors = cache_policy_problems(
        organization=organization, consumer_group=consumer_group, values=values
    )
    if errors:
        raise ValidationFailed(errors)
    with transaction.atomic():
        policy = (
            ResponseCachePolicy.objects.order_by()
            .select_for_update()
            .filter(organization=organization, consumer_group=consumer_group)
            .first()
        )
        created = policy is None
        if new and not created:
            where = "this consumer group" if consumer_group is not None else "the organization"
            raise Conflict(
                f"{where} has cache settings already: change those", field="consumer_group"
            )
        if created:
            policy = ResponseCachePolicy(organization=organization, consumer_group=consumer_group)
        before = None if created else _state(policy)
        changed = [name for name in FIELDS if getattr(policy, name) != values[name]]
        if not changed:
            if new:
                raise ApplicationError("every setting is empty: nothing to save", field="enabled")
            return policy, []  # a new row that would say nothing is not written either
        for name in FIELDS:
            setattr(policy, name, values[name])
        policy.save()
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="cache_policy.set",
            obj=policy,
            before=before,
            after={"consumer_group": _group_name(policy), **_state(policy)},
        )
    return policy, changed


def cache_policy_delete(*, policy: ResponseCachePolicy, actor: str, via: str) -> None:
    """Remove settings: a group's then inherits the organization's; the organization's own
    row gone means the built-in defaults (cache off)."""
    with transaction.atomic():
        before = {"consumer_group": _group_name(policy), **_state(policy)}
        audit_record(
            organization=policy.organization,
            actor=actor,
            via=via,
            action="cache_policy.delete",
            obj=policy,
            before=before,
        )
        policy.delete()


def cache_policy_of(
    *, organization: Organization, consumer_group: ConsumerGroup | None
) -> ResponseCachePolicy | None:
    return ResponseCachePolicy.objects.filter(
        organization=organization, consumer_group=consumer_group
    ).first()


def _group_name(policy: ResponseCachePolicy) -> str | None:
    return policy.consumer_group.name if policy.consumer_group_id else None
