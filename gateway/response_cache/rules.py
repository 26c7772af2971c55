"""What the response cache does for one consumer group: its organization's policy row merged
with the group's own (gateway.models.ResponseCachePolicy), as a small frozen record that the
group's key carries (gateway.auth.GroupContext.cache), so the request path reads one attribute.

A group without the cache enabled gets None: the request path then does nothing more.
"""

from dataclasses import dataclass
from decimal import Decimal

from chargeback.money import ZERO
from gateway.models import ResponseCachePolicy

Scope = ResponseCachePolicy.Scope

# Built-in defaults, and the bounds every way in (config file, admin) checks.
DEFAULT_TTL_SECONDS = 3600
DEFAULT_MAX_ENTRY_BYTES = 1024 * 1024
MAX_TTL_SECONDS = 30 * 24 * 3600
MAX_ENTRY_BYTES = 16 * 1024 * 1024
SCOPES = tuple(Scope.values)


@dataclass(frozen=True, slots=True)
class CacheRule:
    """The effective settings of one group. `namespace` names its entries: the group or the
    organization (with its creation time: a row re-created with a reused id, in a restored
    database, starts empty)."""

    organization_id: int
    namespace: str
    scope: str
    ttl_seconds: int
    max_entry_bytes: int
    excluded_models: frozenset
    hit_price: Decimal


def _merged(org_row, group_row) -> dict:
    values = {
        "enabled": False,
        "ttl_seconds": DEFAULT_TTL_SECONDS,
        "max_entry_bytes": DEFAULT_MAX_ENTRY_BYTES,
        "scope": Scope.CONSUMER_GROUP,
        "excluded_models": set(),
        "hit_price": ZERO,
    }
    for row in (org_row, group_row):
        if row is None:
            continue
        for name in ("enabled", "ttl_seconds", "max_entry_bytes", "hit_price"):
            if getattr(row, name) is not None:
                values[name] = getattr(row, name)
        if row.scope:
            values["scope"] = row.scope
        values["excluded_models"] |= set(row.excluded_models or ())
    return values


def cache_rule_for(group) -> CacheRule | None:
    """The effective cache settings of a consumer group (one query), None when it has no cache.
    Called when the gateway loads a key (gateway/auth.py), not per request."""
    org_row = group_row = None
    rows = ResponseCachePolicy.objects.filter(organization_id=group.organization_id).filter(
        consumer_group__isnull=True
    ) | ResponseCachePolicy.objects.filter(consumer_group_id=group.pk)
    for row in rows:
        if row.consumer_group_id is None:
            org_row = row
        elif row.organization_id == group.organization_id:
            group_row = row
    values = _merged(org_row, group_row)
    if not values["enabled"]:
        return None
    scope = values["scope"]
    if scope == Scope.ORGANIZATION and (org_row is None or org_row.scope != Scope.ORGANIZATION):
        # Shared entries only while the organization allows them (services refuse the
        # combination; this holds if the organization's setting changes later).
        scope = Scope.CONSUMER_GROUP
    if scope == Scope.ORGANIZATION:
        namespace = f"o{_micros(group.organization.created_at)}"
    else:
        namespace = f"g{group.pk}.{_micros(group.created_at)}"
    return CacheRule(
        organization_id=group.organization_id,
        namespace=namespace,
        scope=scope,
        ttl_seconds=values["ttl_seconds"],
        max_entry_bytes=values["max_entry_bytes"],
        excluded_models=frozenset(values["excluded_models"]),
        hit_price=values["hit_price"],
    )


def _micros(moment) -> int:
    return int(moment.timestamp() * 1_000_000)
