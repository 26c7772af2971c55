"""Transfers: allocation and reclaim move money between wallets, they never create it.

- `wallet_allocate`: organization -> team (or team -> end user), one entry on each side
  (kind `allocation`: negative on the source, positive on the destination) sharing a
  `transfer_id`. When the source cannot cover it, the organization's `allocation_policy` decides:
  `auto_fund` (default) records an explicit, labelled `credit` to the organization's wallet
  first, in the same transaction (and, for an end user's allocation, moves the team's
  shortfall from the organization first, as its own labelled transfer); `strict` refuses (409)
  naming what is available.
- `wallet_reclaim`: team -> organization, the reverse (kind `reclaim`).

So the sum of all balances only moves with credits, captures, refunds and adjustments
(tests/wallets/test_ledger_state_machine.py). Locks: the wallets' rows in the cascade's order
(user, team, organization: wallets/cascade.py), everywhere, so no two writers wait on each
other in a circle.
"""

import secrets
from decimal import Decimal

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError, Conflict, InsufficientFunds, NotFound
from chargeback.models import Department, Organization
from chargeback.money import ZERO, exact_str, quantize, to_cents
from wallets.ledger import ledger_append
from wallets.models import LedgerEntry, Wallet
from wallets.selectors import AUTO_FUND_REFERENCE
from wallets.services.funding import funding_amount_check
from wallets.services.idempotency import (
    amount_key,
    idempotent_write,
    replayed,
    request_fingerprint,
)
from wallets.services.wallets import wallet_for_organization, wallet_for_team, wallet_for_user

Kind = LedgerEntry.Kind
AUTO_FUND_LABEL = "auto_fund"


def new_transfer_id() -> str:
    return f"trf_{secrets.token_hex(12)}"


def _locked(*wallets: Wallet) -> list[Wallet]:
    """Lock the wallets' rows in the order given (callers give the cascade's order)."""
    return [Wallet.objects.select_for_update().get(pk=w.pk) for w in wallets]


def _transfer(source, destination, amount, *, kind, description, actor, key_fields=None):
    """Move `amount` from `source` to `destination` (both locked): two entries, one transfer
    id. The destination's entry, which carries the idempotency key, is returned."""
    if source.currency != destination.currency:
        raise ApplicationError(
            f"cannot move {source.currency} into a {destination.currency} wallet", field="currency"
        )
    transfer_id = new_transfer_id()
    ledger_append(
        source,
        kind=kind,
        amount=-amount,
        description=description,
        reference=f"to:{_label(destination)}",
        transfer_id=transfer_id,
        actor=actor,
    )
    return ledger_append(
        destination,
        kind=kind,
        amount=amount,
        description=description,
        reference=f"from:{_label(source)}",
        transfer_id=transfer_id,
        actor=actor,
        **(key_fields or {}),
    )


def _label(wallet: Wallet) -> str:
    if wallet.scope == Wallet.Scope.ORGANIZATION:
        return "organization"
    if wallet.scope == Wallet.Scope.USER:
        return f"user:{wallet.user_ref}"
    return wallet.name


def _refuse(source: Wallet, amount: Decimal):
    available, amount = source.balance - source.held, quantize(amount)
    raise Conflict(
        f"the {source.scope} wallet has {exact_str(available)} {source.currency} available, "
        f"this allocation needs {exact_str(amount)} {source.currency} (allocation policy: "
        "strict; credit the organization first, or allocate less)",
        extra={"available": available, "required": amount, "currency": source.currency},
    )


def _cover(organization, source, amount, *, org_wallet, destination_label, actor):
    """Make sure the locked `source` can give `amount`: under `auto_fund`, credit the
    organization's wallet with what it lacks (a labelled credit) and, when the source is a team,
    move the team's shortfall from the organization (a labelled transfer). `strict`: 409."""
    shortfall = amount - (source.balance - source.held)
    if shortfall <= ZERO:
        return
    if organization.allocation_policy != Organization.AllocationPolicy.AUTO_FUND:
        _refuse(source, amount)
    label = f"{AUTO_FUND_LABEL}: covers the allocation to {destination_label}"
    # The organization's own shortfall: all of it when the organization is the source, else
    # what it lacks to give the team its shortfall.
    org_shortfall = shortfall
    if source.pk != org_wallet.pk:
        org_shortfall = shortfall - (org_wallet.balance - org_wallet.held)
    if org_shortfall > ZERO:
        ledger_append(
            org_wallet,
            kind=Kind.CREDIT,
            amount=org_shortfall,
            description=label,
            reference=AUTO_FUND_REFERENCE,
            actor=actor,
        )
    if source.pk != org_wallet.pk:
        _transfer(
            org_wallet, source, shortfall, kind=Kind.ALLOCATION, description=label, actor=actor
        )


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
    """Move funds from the organization's wallet to a department's (created on first
    allocation), or with `user_ref` from the department's wallet to that end user's (attached to
    the department when created). A source that cannot cover it: the organization's
    allocation policy (module docstring).

    Idempotent: the same `idempotency_key` with the same request returns the first entry (the
    destination's) and `created=False`; with a different request it raises
    IdempotencyConflict. A refused request changes nothing (not even an empty wallet is left).
    """
    organization = department.organization
    request_hash = request_fingerprint(
        op="allocate",
        team_id=department.team_id,
        user_ref=user_ref,
        amount=amount_key(amount),
        currency=currency,
        description=description,
    )

    def write():
        team = wallet_for_team(department=department)
        chain = [team, wallet_for_organization(organization=organization)]
        if user_ref:
            chain.insert(
                0,
                wallet_for_user(
                    organization=organization, user_ref=user_ref, department=department
                ),
            )
        locked = _locked(*chain)
        replay = replayed(organization, idempotency_key, request_hash)
        if replay is not None:
            return replay, False
        destination, source, org_wallet = locked[0], locked[1], locked[-1]
        funding_amount_check(amount, currency, destination)
        label = f"user:{user_ref}" if user_ref else department.team_id
        _cover(
            organization,
            source,
            amount,
            org_wallet=org_wallet,
            destination_label=label,
            actor=actor,
        )
        entry = _transfer(
            source,
            destination,
            amount,
            kind=Kind.ALLOCATION,
            description=description,
            actor=actor,
            key_fields={"idempotency_key": idempotency_key or None, "request_hash": request_hash},
        )
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="wallet.allocation",
            obj=destination,
            after={
                "amount": str(amount),
                "currency": currency,
                "from": _label(source),
                "balance": str(destination.balance),
                "entry": entry.pk,
                "transfer_id": entry.transfer_id,
            },
        )
        return entry, True

    return idempotent_write(organization, idempotency_key, request_hash, write)


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
    when it exceeds what is available. Two entries (team -x, organization +x) sharing a transfer
    id, in one transaction; the team entry is returned. Idempotent like wallet_allocate. Locks
    the team wallet, then the organization's (the cascade's order).
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
        # Created inside the transaction so that a refused reclaim leaves nothing behind.
        org_wallet = wallet_for_organization(organization=organization)
        locked, org_wallet = _locked(team_wallet, org_wallet)
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
        transfer_id = new_transfer_id()
        entry = ledger_append(
            locked,
            kind=Kind.RECLAIM,
            amount=-amount,
            description=description,
            idempotency_key=idempotency_key or None,
            request_hash=request_hash,
            reference="to:organization",
            transfer_id=transfer_id,
            actor=actor,
        )
        ledger_append(
            org_wallet,
            kind=Kind.RECLAIM,
            amount=amount,
            description=description,
            reference=f"from:{department.team_id}",
            transfer_id=transfer_id,
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
