"""Refunds: money given back for one charged call, never more than it was charged."""

from decimal import Decimal

from django.db.models import Sum

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError, Conflict, NotFound
from chargeback.models import Organization
from chargeback.money import ZERO, exact_str
from wallets.ledger import ledger_append
from wallets.models import LedgerEntry, Wallet
from wallets.services.funding import funding_amount_check
from wallets.services.idempotency import (
    amount_key,
    idempotent_write,
    replayed,
    request_fingerprint,
)

Kind = LedgerEntry.Kind


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
    request_hash = request_fingerprint(
        op="refund",
        request_id=request_id,
        amount=amount_key(amount),
        currency=currency,
        description=reason,
    )

    def write(amount=amount):
        locked = Wallet.objects.select_for_update().get(pk=wallet.pk)
        replay = replayed(organization, idempotency_key, request_hash)
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
        funding_amount_check(amount, currency, locked)
        if amount > refundable:
            raise Conflict(
                f"{request_id} was charged {exact_str(-capture.amount)} {locked.currency}; "
                f"at most {exact_str(refundable)} {locked.currency} can still be refunded"
            )
        entry = ledger_append(
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

    return idempotent_write(organization, idempotency_key, request_hash, write)
