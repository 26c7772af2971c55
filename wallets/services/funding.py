"""Funding: every entry that adds or removes funds outside a request (allocate, credit,
reclaim, adjust).

Locking: each operation locks the wallet row with SELECT ... FOR UPDATE before reading it, so
idempotency checks and `balance_after` are exact.
"""

from decimal import Decimal

from django.db import transaction

from chargeback.audit import audit_record
from chargeback.errors import (
    ApplicationError,
    InsufficientFunds,
    NotFound,
)
from chargeback.models import Department, Organization
from chargeback.money import ZERO, amount_problem, quantize, to_cents
from wallets.ledger import ledger_append
from wallets.models import LedgerEntry, Wallet
from wallets.services.idempotency import amount_key, idempotent_write, replayed, request_fingerprint
from wallets.services.wallets import wallet_for_organization, wallet_for_team, wallet_for_user

Kind = LedgerEntry.Kind


def funding_amount_check(amount: Decimal, currency: str, wallet: Wallet) -> Decimal:
    """An amount a person asks to move: positive, storable, in the wallet's currency."""
    problem = amount_problem(amount)
    if problem:
        raise ApplicationError(f"amount {problem}", field="amount")
    if currency != wallet.currency:
        raise ApplicationError(
            f"currency must be {wallet.currency}, the wallet's currency", field="currency"
        )
    return amount


def _fund(
    *,
    organization: Organization,
    get_wallet,
    kind: str,
    amount: Decimal,
    currency: str,
    description: str,
    idempotency_key: str | None,
    actor: str,
    via: str,
    request_hash: str,
) -> tuple[LedgerEntry, bool]:
    """Append one funding entry to the wallet `get_wallet()` returns (creating it if needed).

    The wallet is created inside the same transaction, so a refused request (bad amount, wrong
    currency) leaves no empty wallet behind; replays and key races as in `_idempotent_write`.
    """

    def write():
        wallet = Wallet.objects.select_for_update().get(pk=get_wallet().pk)
        replay = replayed(organization, idempotency_key, request_hash)
        if replay is not None:
            return replay, False
        funding_amount_check(amount, currency, wallet)
        entry = ledger_append(
            wallet,
            kind=kind,
            amount=amount,
            description=description,
            idempotency_key=idempotency_key or None,
            request_hash=request_hash,
            actor=actor,
        )
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action=f"wallet.{kind}",
            obj=wallet,
            after={
                "amount": str(amount),
                "currency": currency,
                "balance": str(wallet.balance),
                "entry": entry.pk,
            },
        )
        return entry, True

    return idempotent_write(organization, idempotency_key, request_hash, write)


def wallet_allocate(
    *,
    department: Department,
    amount: Decimal,
    currency: str,
    description: str = "",
    idempotency_key: str | None = None,
    actor: str = "",
    via: str = "api",
    user_ref: str = "",
) -> tuple[LedgerEntry, bool]:
    """Add funds to a department's wallet (created on first allocation), or with `user_ref` to
    that end user's wallet (attached to the department when created).

    Idempotent: the same `idempotency_key` with the same request returns the first entry and
    `created=False`; with a different request it raises IdempotencyConflict. Locks the wallet row.
    A refused request changes nothing (not even an empty wallet is left behind).
    """
    if user_ref:

        def get_wallet():
            return wallet_for_user(
                organization=department.organization, user_ref=user_ref, department=department
            )

    else:

        def get_wallet():
            return wallet_for_team(department=department)

    return _fund(
        organization=department.organization,
        get_wallet=get_wallet,
        kind=Kind.ALLOCATION,
        amount=amount,
        currency=currency,
        description=description,
        idempotency_key=idempotency_key,
        actor=actor,
        via=via,
        request_hash=request_fingerprint(
            op="allocate",
            team_id=department.team_id,
            user_ref=user_ref,
            amount=amount_key(amount),
            currency=currency,
            description=description,
        ),
    )


def wallet_credit(
    *,
    organization: Organization,
    amount: Decimal,
    currency: str,
    description: str = "",
    idempotency_key: str | None = None,
    actor: str = "",
    via: str = "api",
) -> tuple[LedgerEntry, bool]:
    """Add funds to the organization's wallet. Idempotent like wallet_allocate."""
    return _fund(
        organization=organization,
        get_wallet=lambda: wallet_for_organization(organization=organization),
        kind=Kind.CREDIT,
        amount=amount,
        currency=currency,
        description=description,
        idempotency_key=idempotency_key,
        actor=actor,
        via=via,
        request_hash=request_fingerprint(
            op="credit", amount=amount_key(amount), currency=currency, description=description
        ),
    )


def wallet_reclaim(
    *,
    department: Department,
    amount: Decimal | None = None,
    currency: str | None = None,
    description: str = "",
    idempotency_key: str | None = None,
    actor: str = "",
    via: str = "api",
) -> tuple[LedgerEntry, bool]:
    """Move unspent funds from a department's wallet back to the organization's wallet.

    `amount=None` reclaims everything available. Never takes held funds: the request is refused
    when it exceeds what is available. Two entries (team -x, organization +x) in one transaction;
    the team entry is returned. Idempotent like wallet_allocate. Locks the team wallet, then the
    organization's (always in that order).
    """
    organization = department.organization
    team_wallet = Wallet.objects.filter(
        organization=organization, scope=Wallet.Scope.TEAM, department=department
    ).first()
    if team_wallet is None:
        raise NotFound(f"no wallet for team {department.team_id}")
    currency = currency or team_wallet.currency
    request_hash = request_fingerprint(
        op="reclaim",
        team_id=department.team_id,
        amount=amount_key(amount),
        currency=currency,
        description=description,
    )

    def write(amount=amount):
        locked = Wallet.objects.select_for_update().get(pk=team_wallet.pk)
        replay = replayed(organization, idempotency_key, request_hash)
        if replay is not None:
            return replay, False
        available = locked.balance - locked.held
        if amount is None:
            if available <= ZERO:
                raise InsufficientFunds(
                    f"nothing is available to reclaim from {department.team_id}",
                    available=available,
                    required=None,
                    currency=locked.currency,
                )
            amount = available
        funding_amount_check(amount, currency, locked)
        if amount > available:
            raise InsufficientFunds(
                f"only {to_cents(available)} {locked.currency} is available to reclaim",
                available=available,
                required=amount,
                currency=locked.currency,
            )
        # Created inside the transaction so that a refused reclaim leaves nothing behind.
        org_wallet = wallet_for_organization(organization=organization)
        org_wallet = Wallet.objects.select_for_update().get(pk=org_wallet.pk)
        if org_wallet.currency != locked.currency:
            raise ApplicationError(
                f"cannot reclaim {locked.currency} into the organization's "
                f"{org_wallet.currency} wallet"
            )
        entry = ledger_append(
            locked,
            kind=Kind.RECLAIM,
            amount=-amount,
            description=description,
            idempotency_key=idempotency_key or None,
            request_hash=request_hash,
            actor=actor,
        )
        ledger_append(
            org_wallet,
            kind=Kind.RECLAIM,
            amount=amount,
            description=description,
            reference=f"from:{department.team_id}",
            actor=actor,
        )
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="wallet.reclaim",
            obj=locked,
            after={"amount": str(amount), "balance": str(locked.balance)},
        )
        return entry, True

    return idempotent_write(organization, idempotency_key, request_hash, write)


def wallet_adjust(
    *, wallet: Wallet, amount: Decimal, reason: str, actor: str = "", via: str = "admin"
) -> LedgerEntry:
    """A signed correction with a mandatory reason. Refuses to take more than is available."""
    if not reason.strip():
        raise ApplicationError("an adjustment needs a reason")
    if amount == ZERO or quantize(amount) != amount:
        raise ApplicationError("amount must be non-zero with at most 8 decimal places")
    with transaction.atomic():
        wallet = Wallet.objects.select_for_update().get(pk=wallet.pk)
        before = str(wallet.balance)
        if amount < ZERO and -amount > wallet.balance - wallet.held:
            raise InsufficientFunds(
                "the adjustment exceeds the available funds",
                available=wallet.balance - wallet.held,
                required=-amount,
                currency=wallet.currency,
            )
        entry = ledger_append(
            wallet, kind=Kind.ADJUSTMENT, amount=amount, description=reason, actor=actor
        )
        audit_record(
            organization=wallet.organization,
            actor=actor,
            via=via,
            action="wallet.adjustment",
            obj=wallet,
            before={"balance": before},
            after={"balance": str(wallet.balance), "reason": reason},
        )
    return entry
