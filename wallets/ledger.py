"""The ledger's one rule: every change of a wallet's balance is one appended entry, and the
balance moves with it in the same transaction, so balance = the sum of the wallet's entries and
each entry's `balance_after` is the balance right after it.

Every ORM write that moves a balance goes through here: funding, refunds, captures (also a late
one), the demo's simulated months. The gateway's capture has a one-statement PostgreSQL twin of
the same rule (wallets/fastpath.py `capture_ctes`), which tests/pricing/test_fastpath.py checks
row for row against this one.
"""

from decimal import Decimal

from django.db import transaction
from django.db.models import F

from chargeback.money import ZERO, quantize
from wallets.models import LedgerEntry, Wallet


def ledger_append(
    wallet: Wallet, *, kind: str, amount: Decimal, held_change: Decimal = ZERO, **fields
) -> LedgerEntry:
    """Append one entry to `wallet` and move its balance (and `held` by `held_change`: a capture
    gives its hold back) with it, in one transaction.

    The UPDATE takes the wallet's row lock until the caller's transaction ends, so the balance
    read right after it is exactly the balance after this entry, whoever else is writing; a
    caller that checked funds first (funding) locked the row before checking. `wallet` may be an
    instance or a handle with only its pk and organization (`Wallet(pk=..., organization_id=...)`
    for a hold's wallet); its `balance` and `held` are set to what they are now."""
    with transaction.atomic():
        Wallet.objects.filter(pk=wallet.pk).update(
            balance=F("balance") + amount, held=F("held") + held_change
        )
        balance, held, currency = (
            Wallet.objects.filter(pk=wallet.pk).values_list("balance", "held", "currency").get()
        )
        wallet.balance, wallet.held = balance, held
        return LedgerEntry.objects.create(
            organization_id=wallet.organization_id,
            wallet_id=wallet.pk,
            kind=kind,
            amount=amount,
            balance_after=balance,
            currency=currency,
            **fields,
        )


def ledger_append_many(wallet: Wallet, entries: list[dict], *, batch_size: int = 2000) -> list:
    """Append many entries to one wallet at once (each a dict with `kind`, `amount` and the
    entry's other fields), in the order given: the same rule as ledger_append, with the running
    `balance_after` computed here, one bulk insert and one UPDATE of the balance. Locks the
    wallet row first. For bulk writers (the demo's simulated months), not for requests."""
    with transaction.atomic():
        locked = Wallet.objects.select_for_update().get(pk=wallet.pk)
        balance, rows = locked.balance, []
        for entry in entries:
            amount = entry["amount"]
            balance = quantize(balance + amount)
            rows.append(
                LedgerEntry(
                    organization_id=locked.organization_id,
                    wallet_id=locked.pk,
                    balance_after=balance,
                    currency=locked.currency,
                    **entry,
                )
            )
        created = LedgerEntry.objects.bulk_create(rows, batch_size=batch_size)
        Wallet.objects.filter(pk=locked.pk).update(balance=balance)
        wallet.balance = balance
        return created
