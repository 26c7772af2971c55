"""Consumer groups: an application or team identity whose key routes spend to its
department. Keys are hashed here and never kept; the prefix identifies them."""

from django.db.models import Q

from chargeback.audit import audit_record
from chargeback.env_refs import env_ref_check
from chargeback.errors import ApplicationError, Conflict
from chargeback.keys import hash_key, key_prefix
from chargeback.models import ConsumerGroup, Department, Organization


def _group_state(group: ConsumerGroup) -> dict:
    # Never the key or its hash: the prefix is enough for a person to tell keys apart.
    return {
        "department": group.department.team_id if group.department_id else None,
        "key_prefix": group.key_prefix,
        "key_env_ref": group.key_env_ref,
        "allowed_models": list(group.allowed_models),
        "rpm_limit": group.rpm_limit,
        "tpm_limit": group.tpm_limit,
        "tpd_limit": group.tpd_limit,
        "parallel_limit": group.parallel_limit,
        "user_rate_limits": dict(group.user_rate_limits),
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
        raise ApplicationError("not a department of this organization", field="department")


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
    tpd_limit: int | None = None,
    parallel_limit: int | None = None,
    user_rate_limits: dict | None = None,
    is_active: bool = True,
    actor: str,
    via: str,
) -> tuple[ConsumerGroup, bool, list[str]]:
    """Create or update the group `name` so it matches; return (group, created, changed fields).
    The raw key is hashed here and not kept; `raw_key=None` keeps an existing group's key (the
    admin, which never sees keys). A key another group answers to is a Conflict that names no
    other organization; a department of another organization or an environment variable the
    operator does not allow (`key_env_ref`) is an ApplicationError naming it."""
    group = ConsumerGroup.objects.filter(organization=organization, name=name).first()
    consumer_group_department_check(organization=organization, department=department)
    if raw_key is None:
        if group is None:
            raise ApplicationError("a new consumer group needs a key", field="raw_key")
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
        "tpd_limit": tpd_limit,
        "parallel_limit": parallel_limit,
        "user_rate_limits": dict(user_rate_limits or {}),
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
