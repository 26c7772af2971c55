"""Tenancy writes: organizations, departments, provider targets, consumer groups, admin tokens.

Each function makes one change and writes its audit row in the caller's transaction. Secrets
never reach the database in clear: group keys and admin tokens are stored as a short prefix and
a SHA-256 digest (chargeback/keys.py); provider secrets encrypted (chargeback/provider_secrets.py)
or as the name of an environment variable the operator allows (chargeback/env_refs.py).
"""

from django.db import transaction
from django.db.models import Q

from chargeback.audit import audit_record
from chargeback.env_refs import env_ref_check
from chargeback.errors import ApplicationError, Conflict, InvalidField
from chargeback.keys import generate_key, hash_key, key_prefix
from chargeback.models import AdminToken, ConsumerGroup, Department, Organization
from chargeback.targets import target_delete, target_upsert  # noqa: F401  (callers use services.*)

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


# --- provider targets: chargeback/targets.py (re-exported here) ------------------------------


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


def consumer_group_department_check(
    *, organization: Organization, department: Department | None
) -> None:
    if department is not None and department.organization_id != organization.pk:
        raise InvalidField("department", "not a department of this organization")


def consumer_group_upsert(
    *,
    organization: Organization,
    name: str,
    raw_key: str | None,
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
    The raw key is hashed here and not kept; `raw_key=None` keeps an existing group's key (the
    admin, which never sees keys). A key another group answers to is a Conflict that names no
    other organization; a department of another organization or an environment variable the
    operator does not allow (`key_env_ref`) is an InvalidField."""
    group = ConsumerGroup.objects.filter(organization=organization, name=name).first()
    consumer_group_department_check(organization=organization, department=department)
    if raw_key is None:
        if group is None:
            raise InvalidField("raw_key", "a new consumer group needs a key")
        digest, key_env_ref = group.key_hash, group.key_env_ref
    else:
        if key_env_ref:
            env_ref_check(organization=organization, name=key_env_ref, field="key_env_ref")
        other = consumer_group_key_in_use(raw_key=raw_key, exclude_pk=group.pk if group else None)
        if other is not None:
            if other.organization_id == organization.pk:
                raise Conflict(
                    f"this key is already used by consumer group {other.name!r}; "
                    "give each group its own key"
                )
            # Keys are global (a key alone finds its group), but nothing may tell one tenant
            # about another: not that the key belongs to another organization.
            raise Conflict("this key cannot be used; choose another")
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
    if raw_key is not None and group.key_hash != digest:
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
            raise Conflict("this admin token cannot be used; choose another")
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
