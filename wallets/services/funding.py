"""Funding: the entries that add or remove funds outside a request and outside a transfer
(credit, adjust); allocate and reclaim move funds between wallets (transfers.py).

Locking: each operation locks the wallet row with SELECT ... FOR UPDATE before reading it, so
idempotency checks and `balance_after` are exact.
"""

from decimal import Decimal

from django.db import transaction

from chargeback.audit import audit_record
from chargeback.errors import (
    ApplicationError,
    InsufficientFunds,
)
from chargeback.models import Organization
from chargeback.money import ZERO, amount_problem, quantize
from wallets.ledger import ledger_append
from wallets.models import LedgerEntry, Wallet
from wallets.services.idempotency import amount_key, idempotent_write, replayed, request_fingerprint
from wallets.services.wallets import wallet_for_organization

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
