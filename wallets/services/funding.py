"""Funding: the wallets themselves and every entry that adds or removes funds outside a request
(allocate, credit, reclaim, adjust, refund).

Locking: each operation locks the wallet row with SELECT ... FOR UPDATE before reading it, so
idempotency checks and `balance_after` are exact.
"""

import hashlib
import json
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, Sum

from chargeback.audit import audit_record
from chargeback.errors import (
    ApplicationError,
    Conflict,
    IdempotencyConflict,
    InsufficientFunds,
    NotFound,
)
from chargeback.models import Department, Organization
from chargeback.money import ZERO, exact_str, quantize, to_cents
from wallets.models import LedgerEntry, Wallet

Kind = LedgerEntry.Kind


# --- wallets -----------------------------------------------------------------------------------


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


# --- funding -------------------------------------------------------------------------------------


def _amount_key(amount) -> str:
    """The amount as the request hash sees it: 20000, 20000.0 and "20000.00" are one request."""
    if isinstance(amount, Decimal) and amount.is_finite():
        return format(amount.normalize(), "f")
    return str(amount)


def _request_hash(**fields) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def _replayed(organization, idempotency_key, request_hash) -> LedgerEntry | None:
    """The entry an earlier request with this key made (None if new); a different request -> 409."""
    if not idempotency_key:
        return None
    entry = LedgerEntry.objects.filter(
        organization=organization, idempotency_key=idempotency_key
    ).first()
    if entry is None:
        return None
    if entry.request_hash != request_hash:
        raise IdempotencyConflict("Idempotency-Key was already used with a different request")
    return entry


def _append(wallet: Wallet, *, kind, amount: Decimal, **fields) -> LedgerEntry:
    """Add one entry to a wallet whose row the caller holds locked, keeping `balance` in step."""
    wallet.balance = quantize(wallet.balance + amount)
    Wallet.objects.filter(pk=wallet.pk).update(balance=F("balance") + amount)
    return LedgerEntry.objects.create(
        organization_id=wallet.organization_id,
        wallet=wallet,
        kind=kind,
        amount=amount,
        balance_after=wallet.balance,
        currency=wallet.currency,
        **fields,
    )


def _check_positive(amount: Decimal, currency: str, wallet: Wallet) -> Decimal:
    if amount <= ZERO:
        raise ApplicationError("amount must be greater than zero")
    if quantize(amount) != amount:
        raise ApplicationError("amount has more than 8 decimal places")
    if currency != wallet.currency:
        raise ApplicationError(f"currency must be {wallet.currency}, the wallet's currency")
    return amount


def _idempotent_write(organization, idempotency_key, request_hash, write):
    """Run `write()` (which locks its wallet, then checks `_replayed`) in one transaction. The
    idempotency key is unique per organization, not per wallet: when a concurrent request with
    the same key commits first, the unique constraint fires and we answer as a replay (or a
    conflict) instead of a 500."""
    try:
        with transaction.atomic():
            return write()
    except IntegrityError:
        replay = _replayed(organization, idempotency_key, request_hash)
        if replay is None:
            raise
        return replay, False


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
        replay = _replayed(organization, idempotency_key, request_hash)
        if replay is not None:
            return replay, False
        _check_positive(amount, currency, wallet)
        entry = _append(
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

    return _idempotent_write(organization, idempotency_key, request_hash, write)


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
        request_hash=_request_hash(
            op="allocate",
            team_id=department.team_id,
            user_ref=user_ref,
            amount=_amount_key(amount),
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
        request_hash=_request_hash(
            op="credit", amount=_amount_key(amount), currency=currency, description=description
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
    request_hash = _request_hash(
        op="reclaim",
        team_id=department.team_id,
        amount=_amount_key(amount),
        currency=currency,
        description=description,
    )

    def write(amount=amount):
        locked = Wallet.objects.select_for_update().get(pk=team_wallet.pk)
        replay = _replayed(organization, idempotency_key, request_hash)
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
        _check_positive(amount, currency, locked)
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
        entry = _append(
            locked,
            kind=Kind.RECLAIM,
            amount=-amount,
            description=description,
            idempotency_key=idempotency_key or None,
            request_hash=request_hash,
            actor=actor,
        )
        _append(
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

    return _idempotent_write(organization, idempotency_key, request_hash, write)


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
        entry = _append(
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


def wallet_refund(
    *,
    organization: Organization,
    request_id: str,
    reason: str,
    amount: Decimal | None = None,
    currency: str | None = None,
    team_id: str = "",
    idempotency_key: str | None = None,
    actor: str = "",
    via: str = "api",
) -> tuple[LedgerEntry, bool]:
    """Give back (part of) what one gateway call was charged, e.g. a provider credit for a
    failed call. The refund names the call by its request id and goes to the wallet its capture
    was taken from (`team_id`, when given, must be that wallet's team).

    Bounded: never more than the capture minus the call's earlier refunds (`amount=None`
    refunds all of that). The wallet row is locked before the earlier refunds are summed, so
    concurrent refunds of one call can never add up to more than it was charged. Idempotent
    like wallet_allocate (same `idempotency_key` and request: the first entry again, with
    `created=False`). A refused refund changes nothing.
    """
    if not reason.strip():
        raise ApplicationError("a refund needs a reason")
    capture = (
        LedgerEntry.objects.filter(
            organization=organization, kind=Kind.CAPTURE, reference=request_id
        )
        .select_related("wallet__department")
        .first()
    )
    if capture is None:
        raise NotFound(f"no charged call with request id {request_id!r}")
    wallet = capture.wallet
    if team_id and (wallet.department is None or wallet.department.team_id != team_id):
        raise ApplicationError(f"{request_id} was not charged to {team_id}'s wallet")
    currency = currency or wallet.currency
    request_hash = _request_hash(
        op="refund",
        request_id=request_id,
        amount=_amount_key(amount),
        currency=currency,
        description=reason,
    )

    def write(amount=amount):
        locked = Wallet.objects.select_for_update().get(pk=wallet.pk)
        replay = _replayed(organization, idempotency_key, request_hash)
        if replay is not None:
            return replay, False
        refunded = (
            LedgerEntry.objects.filter(
                wallet=locked, kind=Kind.REFUND, reference=request_id
            ).aggregate(total=Sum("amount"))["total"]
            or ZERO
        )
        refundable = -capture.amount - refunded
        if amount is None:
            if refundable <= ZERO:
                raise Conflict(f"{request_id} was already refunded in full")
            amount = refundable
        _check_positive(amount, currency, locked)
        if amount > refundable:
            raise Conflict(
                f"{request_id} was charged {exact_str(-capture.amount)} {locked.currency}; "
                f"at most {exact_str(refundable)} {locked.currency} can still be refunded"
            )
        entry = _append(
            locked,
            kind=Kind.REFUND,
            amount=amount,
            description=reason,
            reference=request_id,
            idempotency_key=idempotency_key or None,
            request_hash=request_hash,
            actor=actor,
        )
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="wallet.refund",
            obj=locked,
            after={
                "amount": str(amount),
                "currency": locked.currency,
                "request_id": request_id,
                "reason": reason,
                "balance": str(locked.balance),
                "entry": entry.pk,
            },
        )
        return entry, True

    return _idempotent_write(organization, idempotency_key, request_hash, write)
