"""A wallet's transactions (`GET /v1/wallets/{team_id}/transactions`, the product's name for
the ledger): its ledger entries and its holds' reservations and releases, as one list.

| kind | from | amount |
| --- | --- | --- |
| `reserve` | a hold placed (`Hold.created_at`) | minus the amount held: available went down |
| `release` | a hold released or expired (`Hold.resolved_at`) | plus the amount: available back |
| `settle` | a `capture` entry | the charge (negative) |
| `refund`, `allocate`, `reclaim`, `credit`, `adjust` | the entries `refund`, `allocation`, `reclaim`, `credit`, `adjustment` | as in the ledger |

A captured hold shows as `reserve` then `settle` (the capture gives the hold back and charges
the actual cost in one entry). Only ledger rows carry `balance_after`: a reservation moves
`held`, never the balance. One query (a UNION) however many rows, ordered newest first.
"""

from datetime import datetime

from django.db.models import Case, CharField, F, QuerySet, Value, When
from django.db.models.functions import Concat

from chargeback.money import AmountField
from wallets.models import Hold, LedgerEntry, Wallet

Kind = LedgerEntry.Kind
LEDGER_KINDS = {
    "settle": Kind.CAPTURE,
    "refund": Kind.REFUND,
    "allocate": Kind.ALLOCATION,
    "reclaim": Kind.RECLAIM,
    "credit": Kind.CREDIT,
    "adjust": Kind.ADJUSTMENT,
}
KINDS = ("reserve", "settle", "release", *[k for k in LEDGER_KINDS if k != "settle"])
COLUMNS = (
    "tx_id",
    "tx_kind",
    "tx_amount",
    "tx_balance_after",
    "tx_currency",
    "tx_description",
    "tx_reference",
    "tx_transfer_id",
    "tx_time",
)


def _text(value) -> Value:
    return Value(value, output_field=CharField())


def _ledger(wallet: Wallet, kinds: set[str]) -> QuerySet:
    mapped = [LEDGER_KINDS[k] for k in kinds if k in LEDGER_KINDS]
    return (
        LedgerEntry.objects.filter(
            organization_id=wallet.organization_id, wallet=wallet, kind__in=mapped
        )
        .order_by()
        .annotate(
            tx_id=Concat(_text("le_"), F("id"), output_field=CharField()),
            tx_kind=Case(
                *[When(kind=v, then=_text(k)) for k, v in LEDGER_KINDS.items()],
                output_field=CharField(),
            ),
            tx_amount=F("amount"),
            tx_balance_after=F("balance_after"),
            tx_currency=F("currency"),
            tx_description=F("description"),
            tx_reference=F("reference"),
            tx_transfer_id=F("transfer_id"),
            tx_time=F("created_at"),
        )
        .values_list(*COLUMNS)
    )


def _holds(wallet: Wallet, *, released: bool) -> QuerySet:
    rows = Hold.objects.filter(organization_id=wallet.organization_id, wallet=wallet)
    if released:
        rows = rows.filter(status__in=[Hold.Status.RELEASED, Hold.Status.EXPIRED])
    return (
        rows.order_by()
        .annotate(
            tx_id=Concat(
                _text("hold_"),
                F("id"),
                _text("_release" if released else "_reserve"),
                output_field=CharField(),
            ),
            tx_kind=_text("release" if released else "reserve"),
            tx_amount=F("amount") if released else F("amount") * -1,
            tx_balance_after=Value(None, output_field=AmountField()),
            tx_currency=F("wallet__currency"),
            tx_description=Case(
                When(status=Hold.Status.EXPIRED, then=_text("expired")),
                default=_text(""),
                output_field=CharField(),
            )
            if released
            else _text(""),
            tx_reference=F("request_id"),
            tx_transfer_id=_text(""),
            tx_time=F("resolved_at") if released else F("created_at"),
        )
        .values_list(*COLUMNS)
    )


def wallet_transactions(
    *,
    wallet: Wallet,
    kinds: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet:
    """The wallet's transactions of `kinds` (default all), in [since, until), newest first, as
    tuples of COLUMNS (page them with limit/offset)."""
    wanted = set(kinds or KINDS)
    parts = []
    if wanted & set(LEDGER_KINDS):
        parts.append(_ledger(wallet, wanted))
    if "reserve" in wanted:
        parts.append(_holds(wallet, released=False))
    if "release" in wanted:
        parts.append(_holds(wallet, released=True))
    filtered = []
    for part in parts:
        if since is not None:
            part = part.filter(tx_time__gte=since)
        if until is not None:
            part = part.filter(tx_time__lt=until)
        filtered.append(part)
    first, *rest = filtered
    rows = first.union(*rest, all=True) if rest else first
    return rows.order_by("-tx_time", "-tx_id")
