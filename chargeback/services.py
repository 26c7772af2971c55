"""Tenancy writes: organizations, departments, provider targets, consumer groups, admin tokens.

Each function makes one change and writes its audit row in the caller's transaction. Secrets
never reach the database in clear: group keys and admin tokens are stored as a short prefix and
a SHA-256 digest (chargeback/keys.py), provider secrets only as an environment variable name.
"""

from django.db import transaction
from django.db.models import Q

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError, Conflict
from chargeback.keys import generate_key, hash_key, key_prefix
from chargeback.models import AdminToken, ConsumerGroup, Department, Organization, ProviderTarget

# --- organizations -----------------------------------------------------------------------------


def organization_create(
    *,
    name: str,
    slug: str,
    time_zone: str = "UTC",
    currency: str = "USD",
    actor: str = "system",
    via: str = "system",
) -> Organization:
    with transaction.atomic():
        if Organization.objects.filter(slug=slug).exists():
            raise Conflict(f"an organization with slug {slug!r} already exists")
        organization = Organization(name=name, slug=slug, time_zone=time_zone, currency=currency)
        organization.full_clean()
        organization.save()
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="organization.create",
            obj=organization,
            after={"name": name, "slug": slug, "time_zone": time_zone, "currency": currency},
        )
    return organization


def organization_get_or_create(
    *, slug: str, name: str, actor: str = "system", via: str = "system"
) -> tuple[Organization, bool]:
    organization = Organization.objects.filter(slug=slug).first()
    if organization is not None:
        return organization, False
    return organization_create(name=name, slug=slug, actor=actor, via=via), True


def organization_cost_tracking_set(
    *,
    organization: Organization,
    enabled: bool,
    wallet_enforcement: bool,
    actor: str,
    via: str,
) -> list[str]:
    """Set the two cost-tracking switches; return the names of the fields that changed."""
    wanted = {"cost_tracking_enabled": enabled, "wallet_enforcement": wallet_enforcement}
    return _organization_update(organization, wanted, actor=actor, via=via)


def organization_rate_limits_unavailable_set(
    *, organization: Organization, value: str, actor: str, via: str
) -> bool:
    """Choose what the gateway does with rate-limited groups while their store is down
    (`open` or `closed`); True when it changed. Gateway processes see it within
    KT_KEY_CACHE_SECONDS."""
    if value not in Organization.RateLimitsUnavailable.values:
        raise ApplicationError(f"rate_limits_unavailable must be open or closed, not {value!r}")
    wanted = {"rate_limits_unavailable": value}
    return bool(_organization_update(organization, wanted, actor=actor, via=via))


def _organization_update(organization: Organization, wanted: dict, *, actor, via) -> list[str]:
    before = {field: getattr(organization, field) for field in wanted}
    changed = [field for field, value in wanted.items() if before[field] != value]
    if not changed:
        return []
    for field in changed:
        setattr(organization, field, wanted[field])
    organization.save(update_fields=changed)
    audit_record(
        organization=organization,
        actor=actor,
        via=via,
        action="organization.update",
        obj=organization,
        before={field: before[field] for field in changed},
        after={field: wanted[field] for field in changed},
    )
    return changed


# --- departments -------------------------------------------------------------------------------


def department_name_from_team_id(team_id: str) -> str:
    """`team_engineering` → `Engineering`, `team_shared_ops` → `Shared Ops`."""
    base = team_id.removeprefix("team_").removeprefix("team-") or team_id
    return base.replace("_", " ").replace("-", " ").strip().title()


def department_get_or_create(
    *,
    organization: Organization,
    team_id: str,
    name: str | None = None,
    actor: str = "system",
    via: str = "system",
) -> tuple[Department, bool]:
    """The department with this team id; created (named from the id unless given) if missing.
    An existing department is never renamed here: its name may have been edited in the admin."""
    department = Department.objects.filter(organization=organization, team_id=team_id).first()
    if department is not None:
        return department, False
    department = Department(
        organization=organization,
        team_id=team_id,
        name=name or department_name_from_team_id(team_id),
    )
    department.full_clean()
    department.save()
    audit_record(
        organization=organization,
        actor=actor,
        via=via,
        action="department.create",
        obj=department,
        after={"team_id": team_id, "name": department.name},
    )
    return department, True


# --- provider targets --------------------------------------------------------------------------


# Django's URLValidator refuses host names without a dot (`http://ollama:11434/v1`, a compose
# service), which are exactly the self-hosted servers a target points at; callers check the URL
# (scheme and host) themselves.
URL_CHECKED_BY_CALLER = ["base_url"]


def _target_state(target: ProviderTarget) -> dict:
    return {
        "provider": target.provider,
        "base_url": target.base_url,
        "secret_env": target.secret_env,
        "served_models": list(target.served_models),
        "options": dict(target.options),
    }


def target_upsert(
    *,
    organization: Organization,
    target_id: str,
    provider: str,
    base_url: str = "",
    secret_env: str = "",
    served_models: list[str] | None = None,
    options: dict | None = None,
    actor: str,
    via: str,
) -> tuple[ProviderTarget, bool, list[str]]:
    """Create or update one target; return (target, created, changed field names)."""
    wanted = {
        "provider": provider,
        "base_url": base_url or "",
        "secret_env": secret_env or "",
        "served_models": list(served_models or []),
        "options": dict(options or {}),
    }
    target = ProviderTarget.objects.filter(organization=organization, target_id=target_id).first()
    if target is None:
        target = ProviderTarget(organization=organization, target_id=target_id, **wanted)
        target.full_clean(exclude=URL_CHECKED_BY_CALLER)
        target.save()
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="target.create",
            obj=target,
            after={"target_id": target_id, **wanted},
        )
        return target, True, []
    before = _target_state(target)
    changed = [field for field, value in wanted.items() if before[field] != value]
    if changed:
        for field in changed:
            setattr(target, field, wanted[field])
        target.full_clean(exclude=URL_CHECKED_BY_CALLER)
        target.save(update_fields=changed)
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="target.update",
            obj=target,
            before={field: before[field] for field in changed},
            after={field: wanted[field] for field in changed},
        )
    return target, False, changed


def target_delete(*, target: ProviderTarget, actor: str, via: str) -> None:
    """Usage events keep the target id as text, so deleting a target loses no history."""
    audit_record(
        organization=target.organization,
        actor=actor,
        via=via,
        action="target.delete",
        obj=target,
        before={"target_id": target.target_id, **_target_state(target)},
    )
    target.delete()


# --- consumer groups ---------------------------------------------------------------------------


def _group_state(group: ConsumerGroup) -> dict:
    # Never the key or its hash: the prefix is enough for a person to tell keys apart.
    return {
        "department": group.department.team_id if group.department_id else None,
        "key_prefix": group.key_prefix,
        "key_env_ref": group.key_env_ref,
        "allowed_models": list(group.allowed_models),
        "rpm_limit": group.rpm_limit,
        "tpm_limit": group.tpm_limit,
        "is_active": group.is_active,
    }


def consumer_group_key_in_use(
    *, raw_key: str, exclude_pk: int | None = None
) -> ConsumerGroup | None:
    """The other group (any organization) that already answers to this key, if any."""
    digest = hash_key(raw_key)
    return (
        ConsumerGroup.objects.filter(Q(key_hash=digest) | Q(previous_key_hash=digest))
        .exclude(pk=exclude_pk)
        .select_related("organization")
        .first()
    )


def consumer_group_upsert(
    *,
    organization: Organization,
    name: str,
    raw_key: str,
    department: Department | None,
    key_env_ref: str = "",
    allowed_models: list[str] | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    is_active: bool = True,
    actor: str,
    via: str,
) -> tuple[ConsumerGroup, bool, list[str]]:
    """Create or update the group `name` so it matches; return (group, created, changed fields).
    The raw key is hashed here and not kept; a key another group answers to is a Conflict."""
    group = ConsumerGroup.objects.filter(organization=organization, name=name).first()
    other = consumer_group_key_in_use(raw_key=raw_key, exclude_pk=group.pk if group else None)
    if other is not None:
        owner = (
            f"consumer group {other.name!r}"
            if other.organization_id == organization.pk
            else "another organization"
        )
        raise Conflict(f"this key is already used by {owner}; give each group its own key")
    digest = hash_key(raw_key)
    wanted = {
        "department": department,
        "key_env_ref": key_env_ref or "",
        "allowed_models": list(allowed_models or []),
        "rpm_limit": rpm_limit,
        "tpm_limit": tpm_limit,
        "is_active": is_active,
    }
    if group is None:
        group = ConsumerGroup(
            organization=organization,
            name=name,
            key_hash=digest,
            key_prefix=key_prefix(raw_key),
            **wanted,
        )
        group.full_clean()
        group.save()
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="consumer_group.create",
            obj=group,
            after={"name": name, **_group_state(group)},
        )
        return group, True, []
    before = _group_state(group)
    changed = [
        field
        for field, value in wanted.items()
        if (getattr(group, field) if field != "department" else group.department) != value
    ]
    if group.key_hash != digest:
        changed.insert(0, "api_key")
        group.key_hash = digest
        group.key_prefix = key_prefix(raw_key)
    if not changed:
        return group, False, []
    for field in changed:
        if field != "api_key":
            setattr(group, field, wanted[field])
    group.full_clean()
    group.save()
    after = _group_state(group)
    audit_record(
        organization=organization,
        actor=actor,
        via=via,
        action="consumer_group.update",
        obj=group,
        before=before,
        after={**after, "key": "replaced"} if "api_key" in changed else after,
    )
    return group, False, changed


def consumer_group_deactivate(*, group: ConsumerGroup, actor: str, via: str) -> bool:
    """Switch a group off (its key stops working); its history and key hash stay. Idempotent."""
    if not group.is_active:
        return False
    group.is_active = False
    group.save(update_fields=["is_active", "updated_at"])
    audit_record(
        organization=group.organization,
        actor=actor,
        via=via,
        action="consumer_group.deactivate",
        obj=group,
        before={"is_active": True},
        after={"is_active": False},
    )
    return True


# --- admin tokens ------------------------------------------------------------------------------


def admin_token_create(
    *,
    organization: Organization,
    name: str = "admin token",
    raw: str | None = None,
    actor: str = "system",
    via: str = "system",
) -> tuple[AdminToken, str]:
    """A new management-API token. The raw token is returned this once and never stored."""
    raw = raw or generate_key("admin")
    if len(raw) < 16:
        raise ApplicationError("an admin token must be at least 16 characters")
    with transaction.atomic():
        if AdminToken.objects.filter(token_hash=hash_key(raw)).exists():
            raise Conflict("this admin token already exists")
        token = AdminToken.objects.create(
            organization=organization,
            name=name,
            token_prefix=key_prefix(raw),
            token_hash=hash_key(raw),
        )
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="admin_token.create",
            obj=token,
            after={"name": name, "token_prefix": token.token_prefix},
        )
    return token, raw
