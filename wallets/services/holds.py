"""Holds: the gateway's hot path. A hold reserves a request's worst case; it is then captured
(the actual cost is charged), released or expired, exactly once.

Each step is a single conditional UPDATE instead of a row lock: the database re-checks the
condition after any concurrent writer commits, so two holds can never both take the last funds,
and a hold already resolved is never resolved again.
"""

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from chargeback.errors import ApplicationError, InsufficientFunds
from chargeback.money import HALF_UNIT, ZERO, quantize
from wallets import fastpath
from wallets.ledger import ledger_append
from wallets.models import Hold, LedgerEntry, Wallet
from wallets.selectors import chain_refusal, hold_refusal

Kind = LedgerEntry.Kind


def _float_slack() -> Decimal:
    """SQLite compares decimals as floats: 0.1 held + 0.2 asked is 0.30000000000000004 there,
    more than a balance of 0.3, and an affordable hold would be refused. Amounts are whole
    multiples of 1e-8, so half of that as slack decides exactly what exact arithmetic would
    (float error stays far below it for any amount a wallet can hold); PostgreSQL needs none."""
    return HALF_UNIT if connection.vendor == "sqlite" else ZERO


def hold_reserve(
    *,
    wallets: Sequence[Wallet],
    amount: Decimal,
    request_id: str,
    enforce: bool = True,
    department_id: int | None = None,
) -> Hold | fastpath.PlacedHold:
    """What the gateway calls to hold a request's worst case on the first wallet of its chain
    (wallets/cascade.py: user, team, organization) that can cover it; InsufficientFunds when
    none can. Without enforcement the first wallet holds it, whatever it has.

    On PostgreSQL one statement whatever the chain's length (wallets/fastpath.py, the same rows;
    a small record instead of a model instance, which costs about 5 % of a request's CPU to
    build); a chain of one wallet takes the single-wallet statement of before. Elsewhere the
    ORM: hold_place on each wallet in turn, each attempt one conditional UPDATE, so concurrency
    stays safe and at most one wallet is held on. `department_id`: the caller's, recorded on
    the hold."""
    common = {"amount": amount, "request_id": request_id, "department_id": department_id}
    if not enforce or len(wallets) == 1:
        if fastpath.enabled():
            return fastpath.hold_place_fast(wallet=wallets[0], enforce=enforce, **common)
        return hold_place(wallet=wallets[0], enforce=enforce, **common)
    if fastpath.enabled():
        return fastpath.hold_place_cascade_fast(wallets=wallets, **common)
    return hold_place_cascade(wallets=wallets, **common)


def hold_place_cascade(
    *,
    wallets: Sequence[Wallet],
    amount: Decimal,
    request_id: str,
    department_id: int | None = None,
) -> Hold:
    """hold_place on the first of `wallets` (a chain, in order) that can cover `amount`;
    InsufficientFunds naming each wallet when none can."""
    for wallet in wallets:
        try:
            return hold_place(
                wallet=wallet, amount=amount, request_id=request_id, department_id=department_id
            )
        except InsufficientFunds:
            continue
    raise chain_refusal(wallets=wallets, amount=amount)


def hold_place(
    *,
    wallet: Wallet,
    amount: Decimal,
    request_id: str,
    enforce: bool = True,
    ttl_seconds: int | None = None,
    department_id: int | None = None,
) -> Hold:
    """Reserve `amount` on the wallet for one request (of `department_id`'s, when given).

    With `enforce`, refused (InsufficientFunds) unless available >= amount; the check and the
    reservation are one conditional UPDATE, so concurrent holds cannot overspend. The hold expires
    after `ttl_seconds` (KT_HOLD_TTL_SECONDS) and is then released by holds_expire.
    """
    amount = quantize(amount)
    ttl = settings.KT_HOLD_TTL_SECONDS if ttl_seconds is None else ttl_seconds
    now = timezone.now()
    with transaction.atomic():
        rows = Wallet.objects.filter(pk=wallet.pk)
        if enforce:
            rows = rows.filter(balance__gte=F("held") + amount - _float_slack())
        if not rows.update(held=F("held") + amount):
            raise hold_refusal(wallet=wallet, amount=amount)
        return Hold.objects.create(
            organization_id=wallet.organization_id,
            wallet_id=wallet.pk,
            department_id=department_id,
            request_id=request_id,
            amount=amount,
            expires_at=now + timedelta(seconds=ttl),
            created_at=now,
        )


def hold_raise(*, hold, amount: Decimal, enforce: bool = True):
    """Raise a pending hold to `amount` (a request moved to a dearer model: its worst case grew;
    gateway/failover.py). The same hold: still one per request, resolved once. Returns the hold
    with its new amount (`hold` itself when `amount` is not more than it holds).

    With `enforce`, refused (InsufficientFunds, nothing changed) unless the wallet's available
    funds cover the difference; the check and the reservation are one conditional UPDATE of the
    wallet, as for hold_place. Lock order as everywhere: the hold row (which must still be
    pending and this request's, else ApplicationError), then the wallet row."""
    amount = quantize(amount)
    if amount <= hold.amount:
        return hold
    with transaction.atomic():
        row = (
            Hold.objects.select_for_update()
            .filter(pk=hold.pk, request_id=hold.request_id, status=Hold.Status.PENDING)
            .first()
        )
        if row is None:
            raise ApplicationError(f"hold {hold.pk} is no longer pending")
        extra = amount - row.amount
        wallets = Wallet.objects.filter(pk=row.wallet_id)
        if enforce:
            wallets = wallets.filter(balance__gte=F("held") + extra - _float_slack())
        if not wallets.update(held=F("held") + extra):
            raise hold_refusal(wallet=Wallet(pk=row.wallet_id), amount=amount)
        Hold.objects.filter(pk=row.pk).update(amount=amount)
    if isinstance(hold, Hold):
        hold.amount = amount
        return hold
    return replace(hold, amount=amount)


def _resolve(hold: Hold, status: str, captured: Decimal | None = None) -> bool:
    """Mark a pending hold resolved; False when somebody else resolved it first. A hold is
    matched by id and request id (gateway/fastpath.py: an id may be reissued after a crash)."""
    return bool(
        Hold.objects.filter(
            pk=hold.pk, request_id=hold.request_id, status=Hold.Status.PENDING
        ).update(status=status, captured_amount=captured, resolved_at=timezone.now())
    )


def hold_capture(
    *, hold: Hold, amount: Decimal, reference: str = "", description: str = ""
) -> LedgerEntry | None:
    """Charge the actual cost of a held request and release the rest of the hold.

    Exactly once: returns the capture entry, or None when the hold was already captured, released
    or expired (nothing is charged then). A zero amount releases the hold instead. The actual cost
    is charged even when it exceeds the hold (the provider billed it). Callers may wrap this in
    their own transaction to write the usage event atomically with it.
    """
    amount = quantize(amount)
    if amount <= ZERO:
        hold_release(hold=hold)
        return None
    with transaction.atomic():
        if not _resolve(hold, Hold.Status.CAPTURED, amount):
            return None
        return ledger_append(
            Wallet(pk=hold.wallet_id, organization_id=hold.organization_id),
            kind=Kind.CAPTURE,
            amount=-amount,
            held_change=-hold.amount,
            hold_id=hold.pk,
            reference=reference or hold.request_id,
            description=description,
        )


LATE_CAPTURE = "late capture: the hold had expired before the capture committed"


def hold_capture_late(*, hold: Hold, amount: Decimal, reference: str = "") -> LedgerEntry | None:
    """Charge the actual cost of an answered request whose hold expired before its capture
    could commit (the database was away longer than the hold's TTL, or the capture was replayed
    from the gateway's outbox after the sweeper ran; gateway/recording.py usage_settle).

    Exactly once: only an expired hold is captured, by one conditional `UPDATE ... WHERE
    status='expired'` (and the ledger allows one capture entry per hold); None when the hold is
    not expired (a pending hold takes hold_capture; a captured or released one is done) or the
    amount is zero. The expiry moved no money, only `held`, so nothing is reversed: the charge is
    one new capture entry, and `held` is not touched again. It may take the balance below what
    is available by then (the provider billed the call); balance stays the sum of the entries.
    Lock order as everywhere: the hold row, then the wallet row.
    """
    amount = quantize(amount)
    if amount <= ZERO:
        return None
    with transaction.atomic():
        resolved = Hold.objects.filter(
            pk=hold.pk, request_id=hold.request_id, status=Hold.Status.EXPIRED
        ).update(status=Hold.Status.CAPTURED, captured_amount=amount, resolved_at=timezone.now())
        if not resolved:
            return None
        # The expiry gave `held` back already: only the balance moves now.
        return ledger_append(
            Wallet(pk=hold.wallet_id, organization_id=hold.organization_id),
            kind=Kind.CAPTURE,
            amount=-amount,
            hold_id=hold.pk,
            reference=reference or hold.request_id,
            description=LATE_CAPTURE,
        )


def hold_release(*, hold: Hold, status: str = Hold.Status.RELEASED) -> bool:
    """Give the whole hold back. Exactly once: False when it was already resolved."""
    with transaction.atomic():
        if not _resolve(hold, status):
            return False
        Wallet.objects.filter(pk=hold.wallet_id).update(held=F("held") - hold.amount)
    return True


def holds_expire(*, now=None, limit: int = 1000) -> list[Hold]:
    """Release pending holds past their expiry (a crashed or killed request, or one whose
    capture is still waiting in a gateway's outbox). Returns those this call expired; each is
    resolved exactly once even with several sweepers running.

    Expiring gives the funds back; it is not the end of the request's money: a capture that
    arrives later (hold_capture_late) still charges the answered call's actual cost, once."""
    now = now or timezone.now()
    expired = []
    for hold in Hold.objects.filter(status=Hold.Status.PENDING, expires_at__lt=now).order_by(
        "expires_at"
    )[:limit]:
        if hold_release(hold=hold, status=Hold.Status.EXPIRED):
            expired.append(hold)
    return expired
