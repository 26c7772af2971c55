"""Tenancy writes: organizations, departments, provider targets, consumer groups, admin tokens.

Each function makes one change and writes its audit row in the caller's transaction. Secrets
never reach the database in clear: group keys and admin tokens are stored as a short prefix and
a SHA-256 digest (chargeback/keys.py); provider secrets encrypted (chargeback/provider_secrets.py)
or as the name of an environment variable the operator allows (chargeback/env_refs.py).
"""

import re
import zoneinfo

from django.db import transaction
from django.db.models import ProtectedError, Q, RestrictedError

from chargeback.audit import audit_record
from chargeback.env_refs import env_ref_check
from chargeback.errors import ApplicationError, Conflict, collect_errors
from chargeback.keys import generate_key, hash_key, key_prefix
from chargeback.models import AdminToken, ConsumerGroup, Department, Membership, Organization
from chargeback.money import CURRENCIES
from chargeback.roles import GROUP_PREFIX
from chargeback.targets import target_delete, target_upsert  # noqa: F401  (callers use services.*)
from chargeback.validation import email_list_problems

SLUG_RE = re.compile(r"^[A-Za-z0-9_-]+$")

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
    changed = organization_update(
        organization=organization,
        actor=actor,
        via=via,
        cost_tracking_enabled=enabled,
        wallet_enforcement=wallet_enforcement,
    )
    return changed


def organization_rate_limits_unavailable_set(
    *, organization: Organization, value: str, actor: str, via: str
) -> bool:
    """Choose what the gateway does with rate-limited groups while their store is down
    (`open` or `closed`); True when it changed. Gateway processes see it within
    KT_KEY_CACHE_SECONDS."""
    changed = organization_update(
        organization=organization, actor=actor, via=via, rate_limits_unavailable=value
    )
    return bool(changed)


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
    return (
        department_create(
            organization=organization, team_id=team_id, name=name or "", actor=actor, via=via
        ),
        True,
    )


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


# --- organization settings -------------------------------------------------------------------

ORGANIZATION_EDITABLE = (
    "name",
    "slug",
    "time_zone",
    "currency",
    "finance_emails",
    "cost_tracking_enabled",
    "wallet_enforcement",
    "rate_limits_unavailable",
)


def _organization_check(organization: Organization) -> None:
    errors = collect_errors()
    if not str(organization.name or "").strip():
        errors.add("name", "must not be empty")
    if not SLUG_RE.match(organization.slug or ""):
        errors.add("slug", "use letters, digits, '-' and '_'")
    elif Organization.objects.filter(slug=organization.slug).exclude(pk=organization.pk).exists():
        errors.add("slug", f"an organization with slug {organization.slug!r} already exists")
    if organization.time_zone not in zoneinfo.available_timezones():
        errors.add("time_zone", f"unknown time zone {organization.time_zone!r}")
    if organization.currency not in CURRENCIES:
        errors.add("currency", f"unknown currency {organization.currency!r}")
    for problem in email_list_problems(organization.finance_emails):
        errors.add("finance_emails", problem)
    if organization.rate_limits_unavailable not in Organization.RateLimitsUnavailable.values:
        errors.add("rate_limits_unavailable", "open or closed")
    errors.raise_if_any()


def organization_update(
    *, organization: Organization, actor: str, via: str, **changes
) -> list[str]:
    """Change an organization's settings; return the names of the fields that changed (no
    write, no audit row when none did). Its currency cannot change once it has wallets: their
    ledgers are in the old one."""
    unknown = set(changes) - set(ORGANIZATION_EDITABLE)
    if unknown:
        raise ApplicationError(f"cannot change {', '.join(sorted(unknown))}")
    with transaction.atomic():
        locked = Organization.objects.select_for_update().get(pk=organization.pk)
        before = {field: getattr(locked, field) for field in changes}
        changed = [field for field, value in changes.items() if before[field] != value]
        if not changed:
            return []
        for field in changed:
            setattr(locked, field, changes[field])
        _organization_check(locked)
        if "currency" in changed and locked.wallets.exists():
            raise ApplicationError(
                f"the currency cannot change: the organization's wallets are in {before['currency']}",
                field="currency",
            )
        locked.save(update_fields=changed)
        for field in changed:  # the caller's instance says what the database now says
            setattr(organization, field, changes[field])
        audit_record(
            organization=locked,
            actor=actor,
            via=via,
            action="organization.update",
            obj=organization,
            before={field: before[field] for field in changed},
            after={field: changes[field] for field in changed},
        )
    return changed


def organization_delete(*, organization: Organization, actor: str, via: str) -> None:
    """Delete a tenant and everything it owns (platform operators only). The audit row belongs
    to no organization, so it outlives the tenant."""
    with transaction.atomic():
        audit_record(
            organization=None,
            actor=actor,
            via=via,
            action="organization.delete",
            obj=organization,
            before={"name": organization.name, "slug": organization.slug},
        )
        try:
            organization.delete()
        except (ProtectedError, RestrictedError) as exc:
            raise ApplicationError(f"cannot delete {organization.slug}: {exc.args[0]}") from None


# --- departments (beyond get-or-create) ------------------------------------------------------


def _department_check(department: Department) -> None:
    errors = collect_errors()
    if not SLUG_RE.match(department.team_id or ""):
        errors.add("team_id", "use letters, digits, '-' and '_'")
    elif (
        Department.objects.filter(
            organization_id=department.organization_id, team_id=department.team_id
        )
        .exclude(pk=department.pk)
        .exists()
    ):
        errors.add("team_id", f"{department.team_id} already exists in this organization")
    if not str(department.name or "").strip():
        errors.add("name", "must not be empty")
    for problem in email_list_problems(department.owner_emails):
        errors.add("owner_emails", problem)
    errors.raise_if_any()


def _department_state(department: Department) -> dict:
    return {
        "team_id": department.team_id,
        "name": department.name,
        "owner_emails": list(department.owner_emails),
    }


def department_create(
    *,
    organization: Organization,
    team_id: str,
    name: str = "",
    owner_emails: list[str] | None = None,
    actor: str,
    via: str,
) -> Department:
    """A new department (named from its team id unless given); its team id must be new."""
    department = Department(
        organization=organization,
        team_id=team_id,
        name=name or department_name_from_team_id(team_id),
        owner_emails=list(owner_emails or []),
    )
    _department_check(department)
    with transaction.atomic():
        department.save()
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="department.create",
            obj=department,
            after=_department_state(department),
        )
    return department


def department_update(*, department: Department, actor: str, via: str, **changes) -> Department:
    """Rename a department or change its owners. Its team id never changes: config files,
    API calls and exports name the department by it."""
    unknown = set(changes) - {"name", "owner_emails"}
    if unknown:
        raise ApplicationError(
            f"{', '.join(sorted(unknown))} cannot change", field=sorted(unknown)[0]
        )
    with transaction.atomic():
        department = Department.objects.select_for_update().get(pk=department.pk)
        before = _department_state(department)
        for field, value in changes.items():
            setattr(department, field, value)
        _department_check(department)
        after = _department_state(department)
        if after == before:
            return department
        department.save()
        audit_record(
            organization=department.organization,
            actor=actor,
            via=via,
            action="department.update",
            obj=department,
            before=before,
            after=after,
        )
    return department


def department_delete(*, department: Department, actor: str, via: str) -> None:
    """Delete a department that nothing points at yet (no consumer group, wallet or usage)."""
    with transaction.atomic():
        audit_record(
            organization=department.organization,
            actor=actor,
            via=via,
            action="department.delete",
            obj=department,
            before=_department_state(department),
        )
        try:
            department.delete()
        except (ProtectedError, RestrictedError):
            raise ApplicationError(
                f"{department.team_id} has consumer groups, wallets or usage; it stays"
            ) from None


# --- admin tokens (beyond create) ------------------------------------------------------------


def admin_token_update(
    *,
    token: AdminToken,
    actor: str,
    via: str,
    name: str | None = None,
    is_active: bool | None = None,
) -> AdminToken:
    """Rename a token or switch it off (a switched-off token is refused at once) or on."""
    changes = {k: v for k, v in {"name": name, "is_active": is_active}.items() if v is not None}
    if "name" in changes and not str(changes["name"]).strip():
        raise ApplicationError("must not be empty", field="name")
    with transaction.atomic():
        token = AdminToken.objects.select_for_update().get(pk=token.pk)
        before = {field: getattr(token, field) for field in changes}
        changed = {f: v for f, v in changes.items() if before[f] != v}
        if not changed:
            return token
        for field, value in changed.items():
            setattr(token, field, value)
        token.save(update_fields=list(changed))
        audit_record(
            organization=token.organization,
            actor=actor,
            via=via,
            action="admin_token.update",
            obj=token,
            before={f: before[f] for f in changed},
            after=changed,
        )
    return token


def admin_token_delete(*, token: AdminToken, actor: str, via: str) -> None:
    with transaction.atomic():
        audit_record(
            organization=token.organization,
            actor=actor,
            via=via,
            action="admin_token.delete",
            obj=token,
            before={"name": token.name, "token_prefix": token.token_prefix},
        )
        token.delete()


# --- staff memberships -----------------------------------------------------------------------


def _membership_state(membership: Membership) -> dict:
    return {
        "user": membership.user.get_username(),
        "role": membership.role,
        "departments": sorted(d.team_id for d in membership.departments.all()),
    }


def membership_save(
    *,
    organization: Organization,
    user,
    role: str,
    departments: list[Department] | None = None,
    actor: str,
    via: str,
) -> Membership:
    """Make `user` staff of `organization` in `role` (budget owners: of `departments`), or
    change their role. A user is staff of one organization; the role's group and staff flag
    follow (chargeback.roles.membership_sync)."""
    departments = list(departments or [])
    errors = collect_errors()
    if role not in Membership.Role.values:
        errors.add("role", f"unknown role {role!r}")
    if any(d.organization_id != organization.pk for d in departments):
        errors.add("departments", "departments must be this organization's")
    errors.raise_if_any()
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(user=user).first()
        if membership is not None and membership.organization_id != organization.pk:
            raise ApplicationError("this user is staff of another organization", field="user")
        before = _membership_state(membership) if membership is not None else None
        if membership is None:
            membership = Membership(user=user, organization=organization)
        membership.role = role
        membership.save()
        membership.departments.set(departments)
        after = _membership_state(membership)
        if after != before:
            audit_record(
                organization=organization,
                actor=actor,
                via=via,
                action="membership.update" if before else "membership.create",
                obj=membership,
                before=before,
                after=after,
            )
    return membership


def membership_delete(*, membership: Membership, actor: str, via: str) -> None:
    """Take a user's staff access away (their account stays; its role group is removed)."""
    with transaction.atomic():
        audit_record(
            organization=membership.organization,
            actor=actor,
            via=via,
            action="membership.delete",
            obj=membership,
            before=_membership_state(membership),
        )
        user = membership.user
        membership.delete()
        user.groups.remove(*user.groups.filter(name__startswith=GROUP_PREFIX))
        if user.is_staff and not user.is_superuser:
            user.is_staff = False
            user.save(update_fields=["is_staff"])
