"""The ledger's one rule: every change of a wallet's balance is one appended entry, and the
balance moves with it in the same transaction, so balance = the sum of the wallet's entries and
each entry's `balance_after` is the balance right after it.

Every ORM write that moves a balance goes through `ledger_append`. The gateway's capture has a
one-statement PostgreSQL twin of the same rule (gateway/fastpath.py, tested row for row
against this one).
"""

from decimal import Decimal

from django.db.models import F

from chargeback.money import quantize
from wallets.models import LedgerEntry, Wallet


def ledger_append(wallet: Wallet, *, kind: str, amount: Decimal, **fields) -> LedgerEntry:
    """Append one entry to a wallet whose row the caller holds locked (SELECT ... FOR UPDATE or
    a conditional UPDATE in the same transaction), keeping `balance` in step. `wallet.balance`
    is updated in memory too, so the caller reads the balance after the entry."""
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
