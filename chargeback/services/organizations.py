"""Organizations: created by the platform, their settings changed by their owners (or a
config file's cost_tracking, gateway and rate_limit_defaults sections), deleted by the platform."""

import zoneinfo

from django.db import transaction
from django.db.models import ProtectedError, RestrictedError

from chargeback.audit import audit_changes, audit_record
from chargeback.errors import ApplicationError, Conflict, collect_errors
from chargeback.models import Organization
from chargeback.money import CURRENCIES
from chargeback.rate_limits import rate_limits_problem
from chargeback.validation import SLUG_RE, email_list_problems


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
    allocation_policy: str = Organization.AllocationPolicy.AUTO_FUND,
) -> list[str]:
    """Set the cost-tracking switches and the allocation policy; return the names of the
    fields that changed."""
    changed = organization_update(
        organization=organization,
        actor=actor,
        via=via,
        cost_tracking_enabled=enabled,
        wallet_enforcement=wallet_enforcement,
        allocation_policy=allocation_policy,
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


def organization_rate_limit_defaults_set(
    *, organization: Organization, value: dict, actor: str, via: str
) -> bool:
    """Set every consumer group's default rate limits (chargeback/rate_limits.py: `rpm`, `tpm`,
    `tpd`, `parallel` and a `per_user` set); True when they changed. Gateway processes see them
    within KT_KEY_CACHE_SECONDS."""
    changed = organization_update(
        organization=organization, actor=actor, via=via, rate_limit_defaults=value
    )
    return bool(changed)


ORGANIZATION_EDITABLE = (
    "name",
    "slug",
    "time_zone",
    "currency",
    "finance_emails",
    "cost_tracking_enabled",
    "wallet_enforcement",
    "rate_limits_unavailable",
    "allocation_policy",
)
# Set from the config file only (`rate_limit_defaults`); shown read-only in the admin.
ORGANIZATION_FROM_CONFIG = ("rate_limit_defaults",)


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
    if organization.allocation_policy not in Organization.AllocationPolicy.values:
        errors.add("allocation_policy", "auto_fund or strict")
    problem = rate_limits_problem(organization.rate_limit_defaults, nested=True)
    if problem:
        errors.add("rate_limit_defaults", problem)
    errors.raise_if_any()


def organization_update(
    *, organization: Organization, actor: str, via: str, **changes
) -> list[str]:
    """Change an organization's settings; return the names of the fields that changed (no
    write, no audit row when none did). Its currency cannot change once it has wallets: their
    ledgers are in the old one."""
    unknown = set(changes) - set(ORGANIZATION_EDITABLE) - set(ORGANIZATION_FROM_CONFIG)
    if unknown:
        raise ApplicationError(f"cannot change {', '.join(sorted(unknown))}")

    def check(locked: Organization, before: dict) -> None:
        _organization_check(locked)
        if before.get("currency", locked.currency) != locked.currency and locked.wallets.exists():
            raise ApplicationError(
                f"the currency cannot change: the organization's wallets are in {before['currency']}",
                field="currency",
            )

    with transaction.atomic():
        locked = Organization.objects.select_for_update().get(pk=organization.pk)
        changed = audit_changes(
            locked,
            changes,
            organization=locked,
            actor=actor,
            via=via,
            action="organization.update",
            check=check,
        )
        for field in changed:  # the caller's instance says what the database now says
            setattr(organization, field, changes[field])
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
