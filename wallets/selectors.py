"""Reads of wallets and their ledger, always scoped to one organization.

Totals come from the ledger (the truth), summed in the database at full precision:
- total allocated: allocation and credit entries that put money into the wallet (an
  allocation's other side, money moved out to a team or user, is not counted);
- total spent: captures minus refunds (money the wallet paid for requests), derived from the
  balance without reading the captures (see wallet_annotate_totals);
- reserved: `Wallet.held`, the sum of pending holds.
Status is decided by `wallet_status`, the one rule every screen (API, admin, budgets) uses
(`wallet_status_expression` is the same rule in SQL, for sortable admin columns).
"""

from decimal import Decimal

from django.db.models import (
    Case,
    CharField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.db.models.lookups import IsNull, LessThan, LessThanOrEqual

from chargeback.errors import InsufficientFunds, NotFound
from chargeback.models import Department, Organization
from chargeback.money import ZERO, AmountField, exact_str
from wallets.models import LedgerEntry, Wallet, WalletStatus

Kind = LedgerEntry.Kind
Status = WalletStatus

FUNDING_KINDS = (Kind.ALLOCATION, Kind.CREDIT)
# The reference of an `auto_fund` credit (wallets/services/transfers.py): money credited only to
# pass an allocation through to a team. It counts as money in, but not as the organization
# funding its wallet: a wallet's "last funding" (the base of `low`, and whether a wallet was
# ever funded, for alerts) skips it.
AUTO_FUND_REFERENCE = "auto_fund"
LAST_FUNDING = Q(kind__in=FUNDING_KINDS, amount__gt=0) & ~Q(reference=AUTO_FUND_REFERENCE)


def wallet_status(*, wallet: Wallet, last_allocation: Decimal | None) -> str:
    """healthy, low or depleted: the one rule, for every screen and alert.

    - depleted: available (balance - held) <= 0;
    - low: available below `wallet.low_threshold_percent` % of the last allocation (the most
      recent allocation or credit entry's amount), so "low" means the same thing for a $100 and
      a $100,000 wallet;
    - healthy: otherwise, including a wallet with funds but no allocation yet (e.g. a refund).
    """
    available = wallet.balance - wallet.held
    if available <= ZERO:
        return Status.DEPLETED
    if (
        last_allocation
        and last_allocation > ZERO
        and available * 100 < last_allocation * wallet.low_threshold_percent
    ):
        return Status.LOW
    return Status.HEALTHY


def wallet_status_expression(*, available, last_funding, threshold_percent):
    """`wallet_status` as an SQL expression, for sortable columns; tests/wallets/test_status.py
    checks that the two agree. Arguments are expressions; a NULL `available` gives "".
    """
    return Case(
        When(IsNull(available, True), then=Value("")),
        When(LessThanOrEqual(available, ZERO), then=Value("depleted")),
        When(
            Q(IsNull(last_funding, False))
            & LessThan(
                available,
                ExpressionWrapper(
                    last_funding * threshold_percent / Value(100), output_field=AmountField()
                ),
            ),
            then=Value("low"),
        ),
        default=Value("healthy"),
        output_field=CharField(),
    )


def _wallet_sum(kinds, *conditions: Q) -> Coalesce:
    """SUM(amount) of the outer wallet's entries of `kinds` (0 for none), with `conditions` on
    the index's included columns. Filtered in WHERE by wallet id and kind, so a partial index of
    those kinds answers it (wallets/models.py)."""
    entries = LedgerEntry.objects.filter(
        *conditions, wallet=OuterRef("pk"), kind__in=kinds
    ).order_by()
    total = entries.values("wallet").annotate(total=Sum("amount")).values("total")
    return Coalesce(Subquery(total), ZERO, output_field=AmountField())


def last_funding_subquery(wallet_id) -> Subquery:
    """The amount of the wallet's most recent funding (LAST_FUNDING: a positive allocation or
    credit, not an auto_fund one; NULL for none): a few steps down the `ledger_wallet_funding`
    index. `wallet_id`: an expression (OuterRef, Subquery)."""
    last = (
        LedgerEntry.objects.filter(LAST_FUNDING, wallet_id=wallet_id)
        .order_by("-created_at", "-id")
        .values("amount")[:1]
    )
    return Subquery(last, output_field=AmountField())


def wallet_annotate_totals(*, queryset: QuerySet[Wallet]) -> QuerySet[Wallet]:
    """Add `available_amount`, `total_allocated`, `total_spent`, `last_allocation` and
    `status` to each wallet, in the same query (correlated subqueries, no N+1), so a page of
    wallets costs one query however many it shows and every column can be sorted. The API, the
    admin and exports read the same annotations.

    None of them reads the wallet's spend entries: balance is the sum of all its entries
    (wallets/ledger.py), so captures + refunds = balance - funding - reclaims - adjustments and
    spent (-(captures + refunds)) = funding + reclaims + adjustments - balance, exactly; the
    funding and reclaim/adjustment sums come from two small partial indexes. So a wallet with a
    year of captures costs what a new one does (tests/wallets/test_totals_from_indexes.py checks
    it against the direct sums)."""
    # Funding entries are signed since allocations are transfers (the giving side negative):
    # spent takes them all, total_allocated only the money that came in.
    funding = _wallet_sum(FUNDING_KINDS)
    queryset = queryset.annotate(
        available_amount=ExpressionWrapper(F("balance") - F("held"), output_field=AmountField()),
        total_allocated=_wallet_sum(FUNDING_KINDS, Q(amount__gt=0)),
        total_spent=ExpressionWrapper(
            funding + _wallet_sum((Kind.RECLAIM, Kind.ADJUSTMENT)) - F("balance"),
            output_field=AmountField(),
        ),
        last_allocation=last_funding_subquery(OuterRef("pk")),
    )
    return queryset.annotate(
        status=wallet_status_expression(
            available=F("available_amount"),
            last_funding=F("last_allocation"),
            threshold_percent=F("low_threshold_percent"),
        )
    )


def wallets_for_org(
    *, organization: Organization, scope: str | None = None, team_id: str | None = None
) -> QuerySet[Wallet]:
    """The organization's wallets (organization, team, user), annotated with their totals and
    status (`wallet_annotate_totals`), in one query whatever their number."""
    qs = Wallet.objects.filter(organization=organization).select_related("department")
    if scope:
        qs = qs.filter(scope=scope)
    if team_id:
        qs = qs.filter(department__team_id=team_id)
    return wallet_annotate_totals(queryset=qs.order_by("scope", "name", "id"))


def wallet_detail(*, organization: Organization, team_id: str) -> Wallet:
    """A department's wallet with its totals and status. NotFound (404) for a team that is not
    this organization's or has no wallet yet: an outsider learns nothing."""
    qs = Wallet.objects.filter(
        organization=organization, scope=Wallet.Scope.TEAM, department__team_id=team_id
    ).select_related("department")
    wallet = wallet_annotate_totals(queryset=qs).first()
    if wallet is None:
        raise NotFound(f"no wallet for team {team_id}")
    return wallet


def wallet_ledger(*, wallet: Wallet) -> QuerySet[LedgerEntry]:
    """The wallet's entries, newest first (page it with limit/offset)."""
    return LedgerEntry.objects.filter(
        organization_id=wallet.organization_id, wallet=wallet
    ).order_by("-created_at", "-id")


def hold_refusal(*, wallet: Wallet, amount: Decimal) -> InsufficientFunds:
    """The refusal of a hold of `amount` that `wallet` cannot cover, with what it has now."""
    current = Wallet.objects.get(pk=wallet.pk)
    return InsufficientFunds(
        f"wallet {current.name} has {exact_str(current.available)} {current.currency} "
        f"available, this request may cost up to {exact_str(amount)} {current.currency}",
        available=current.available,
        required=amount,
        currency=current.currency,
    )


def chain_refusal(*, wallets, amount: Decimal) -> InsufficientFunds:
    """The refusal of a hold of `amount` that no wallet of a chain can cover, naming what each
    has now; `available` is the most any of them has."""
    if len(wallets) == 1:
        return hold_refusal(wallet=wallets[0], amount=amount)
    current = {w.pk: w for w in Wallet.objects.filter(pk__in=[w.pk for w in wallets])}
    chain = [current[w.pk] for w in wallets if w.pk in current]
    currency = chain[0].currency if chain else ""
    parts = ", ".join(
        f"{w.scope} wallet {w.name} has {exact_str(w.available)} {w.currency} available"
        for w in chain
    )
    return InsufficientFunds(
        f"no wallet can cover this request, which may cost up to {exact_str(amount)} {currency}: "
        f"{parts}",
        available=max((w.available for w in chain), default=ZERO),
        required=amount,
        currency=currency,
    )


def effective_wallet(
    *, organization: Organization, department: Department | None, user_ref: str = ""
) -> Wallet | None:
    """The most specific wallet that exists: the end user's, else the team's, else the organization's."""
    q = Q(scope=Wallet.Scope.ORGANIZATION)
    if department is not None:
        q |= Q(scope=Wallet.Scope.TEAM, department=department)
    if user_ref:
        q |= Q(scope=Wallet.Scope.USER, user_ref=user_ref)
    rank = {Wallet.Scope.USER: 0, Wallet.Scope.TEAM: 1, Wallet.Scope.ORGANIZATION: 2}
    wallets = sorted(
        Wallet.objects.filter(q, organization=organization), key=lambda w: rank[w.scope]
    )
    return wallets[0] if wallets else None
