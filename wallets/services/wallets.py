"""The wallets themselves: found or created on first use, and their settings."""

from django.db import IntegrityError, transaction

from chargeback.audit import audit_changes
from chargeback.errors import collect_errors
from chargeback.models import Department, Organization
from wallets.models import Wallet


def _get_or_create(organization: Organization, **lookup) -> Wallet:
    try:
        with transaction.atomic():
            wallet, _ = Wallet.objects.get_or_create(organization=organization, **lookup)
    except IntegrityError:  # created concurrently: the unique constraint kept it single
        wallet = Wallet.objects.get(organization=organization, **lookup)
    return wallet


def wallet_for_organization(*, organization: Organization) -> Wallet:
    """The organization's own wallet, created empty on first use."""
    return _get_or_create(
        organization,
        scope=Wallet.Scope.ORGANIZATION,
        defaults={"name": organization.name, "currency": organization.currency},
    )


def wallet_for_team(*, department: Department) -> Wallet:
    """The department's wallet, created empty on first use."""
    return _get_or_create(
        department.organization,
        scope=Wallet.Scope.TEAM,
        department=department,
        defaults={"name": department.team_id, "currency": department.organization.currency},
    )


def wallet_for_user(
    *, organization: Organization, user_ref: str, department: Department | None = None
) -> Wallet:
    return _get_or_create(
        organization,
        scope=Wallet.Scope.USER,
        user_ref=user_ref,
        defaults={
            "name": f"user:{user_ref}",
            "currency": organization.currency,
            "department": department,
        },
    )


def wallet_update(
    *, wallet: Wallet, actor: str, via: str, name=None, low_threshold_percent=None
) -> Wallet:
    """Rename a wallet or change the share of its last funding below which it is "low". Its
    money never changes here: only through the ledger (funding, holds, refunds)."""
    changes = {
        k: v
        for k, v in {"name": name, "low_threshold_percent": low_threshold_percent}.items()
        if v is not None
    }
    errors = collect_errors()
    if "name" in changes and not str(changes["name"]).strip():
        errors.add("name", "must not be empty")
    percent = changes.get("low_threshold_percent")
    if percent is not None and (
        isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100
    ):
        errors.add("low_threshold_percent", "a whole percentage between 0 and 100")
    errors.raise_if_any()
    with transaction.atomic():
        wallet = Wallet.objects.select_for_update().get(pk=wallet.pk)
        audit_changes(
            wallet,
            changes,
            organization=wallet.organization,
            actor=actor,
            via=via,
            action="wallet.update",
        )
    return wallet
