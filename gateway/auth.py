"""Consumer-group keys: `Authorization: Bearer <key>` or `x-api-key: <key>`.

A key is looked up by its SHA-256 digest once per `KT_KEY_CACHE_SECONDS` per process; in between,
authentication is a dict lookup. The current key works while the group is active; the previous
key (after a rotation) also works until `previous_key_expires_at`, checked on every request.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from chargeback.keys import hash_key
from chargeback.models import ConsumerGroup, Organization
from gateway.cache import ttl_cache
from gateway.errors import GatewayError
from gateway.policies import Policy, policy_for
from gateway.ratelimit import LimitSet
from gateway.response_cache.rules import CacheRule, cache_rule_for

_groups = ttl_cache()


@dataclass(frozen=True)
class GroupContext:
    """What the hot path needs about the caller, detached from the ORM."""

    group_id: int
    group_name: str
    organization_id: int
    department_id: int | None
    allowed_models: frozenset
    cost_tracking: bool
    enforcement: bool
    currency: str
    # Set when the key matched the group's previous key: valid until then.
    grace_until: datetime | None = None
    # Names the group's rate-limit windows; includes its creation time so that a group
    # recreated with a reused id (a restored or re-created database) starts with fresh windows.
    limit_key: str = ""
    # The organization's choice while the rate-limit store is down: refuse (503), else serve.
    rate_limits_fail_closed: bool = False
    # The response cache's settings for this group; None: no cache, nothing more to do.
    cache: CacheRule | None = None
    # The group's rate limits (its own, else the organization's defaults); None: no limits.
    limits: LimitSet | None = None
    # The routing policy that applies to the group (gateway/policies.py); None: no policy.
    policy: Policy | None = None


def raw_key(request) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.META.get("HTTP_X_API_KEY", "").strip()


def _load(digest: str) -> GroupContext | None:
    # The organization's gateway settings come in the same query (a LEFT JOIN; most have none).
    group = (
        ConsumerGroup.objects.select_related(
            "organization", "organization__gateway_settings", "department"
        )
        .filter(Q(key_hash=digest) | Q(previous_key_hash=digest), is_active=True)
        .first()
    )
    if group is None:
        return None
    org = group.organization
    grace = None
    if group.key_hash != digest:
        if group.previous_key_expires_at is None:
            return None
        grace = group.previous_key_expires_at
    own_limits = {
        "rpm": group.rpm_limit,
        "tpm": group.tpm_limit,
        "tpd": group.tpd_limit,
        "parallel": group.parallel_limit,
    }
    gateway_settings = getattr(org, "gateway_settings", None)
    return GroupContext(
        group_id=group.pk,
        group_name=group.name,
        organization_id=org.pk,
        department_id=group.department_id,
        allowed_models=frozenset(group.allowed_models or ()),
        cost_tracking=org.cost_tracking_enabled,
        enforcement=org.wallet_enforcement,
        currency=org.currency,
        grace_until=grace,
        limit_key=f"{group.pk}.{int(group.created_at.timestamp() * 1_000_000)}",
        rate_limits_fail_closed=(
            org.rate_limits_unavailable == Organization.RateLimitsUnavailable.CLOSED
        ),
        cache=cache_rule_for(group),
        limits=LimitSet.of(
            group=own_limits, user=group.user_rate_limits or {}, defaults=org.rate_limit_defaults
        ),
        policy=policy_for(
            gateway_settings.routing_policies if gateway_settings is not None else (),
            group=group.name,
            team_id=group.department.team_id if group.department_id else "",
        ),
    )


def group_authenticate(request) -> GroupContext:
    """The caller's consumer group, or GatewayError 401."""
    raw = raw_key(request)
    if not raw:
        raise GatewayError(
            401,
            "Missing API key: send the consumer group's key as `Authorization: Bearer <key>`.",
            type="invalid_request_error",
            code="invalid_api_key",
        )
    digest = hash_key(raw)
    ctx = _groups.get(digest, lambda: _load(digest))
    if ctx is None or (ctx.grace_until is not None and ctx.grace_until <= timezone.now()):
        raise GatewayError(
            401,
            f"Incorrect API key provided: {raw[:10]}…",
            type="invalid_request_error",
            code="invalid_api_key",
        )
    return ctx
