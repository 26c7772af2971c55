"""`chargeback`: one row per department, month and currency: what finance re-bills.

Spend comes from usage events through gateway.selectors (sum at full precision, round each cell
once). Refunds are ledger entries (wallets.services.wallet_refund), never edits of events: they
are shown in the month they were given, on the department whose wallet received them, and
`net_spend = spend - refunds`. The events export shows gross cost per event; its total equals
this file's `spend` total and the ledger's captures for the same days, to the cent.
Months are calendar months in the organization's time zone, clipped to the export's dates.
"""

from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from budgets.models import Budget
from chargeback.models import Department
from chargeback.money import ROUNDING, ZERO, AmountField, to_cents
from chargeback.periods import day_range, month_end
from gateway.selectors import spend_grouped
from reports.dashboards.selectors import Repeats, repeats_by
from reports.exports.cells import DATE, DECIMAL, INT, JSON, TEXT, Column
from reports.exports.rows import ExportContext, Totals
from wallets.models import LedgerEntry, Wallet

NO_DEPARTMENT = "(no department)"

COLUMNS = [
    Column("month", TEXT, "YYYY-MM, organization time zone"),
    Column("period_start", DATE, "first day counted (the export's date_from in a partial month)"),
    Column("period_end", DATE, "last day counted, inclusive"),
    Column("team_id", TEXT, "empty for spend on the organization's own wallet"),
    Column("department", TEXT),
    Column("currency", TEXT),
    Column("requests", INT),
    Column(
        "failed_requests",
        INT,
        "requests neither answered nor served from the cache (mostly cost 0)",
    ),
    Column("prompt_tokens", INT, "cached tokens included"),
    Column("cached_tokens", INT),
    Column("completion_tokens", INT),
    Column("total_tokens", INT),
    Column("spend", DECIMAL, "gross cost of the month's events, to the cent"),
    Column("refunds", DECIMAL, "refund entries given in the month"),
    Column("net_spend", DECIMAL, "spend - refunds (of the rounded figures: the row adds up)"),
    Column("spend_by_provider", JSON, '{"openai": "12.34", ...} gross, to the cent'),
    Column("spend_by_model", JSON, "by model requested, gross, to the cent"),
    Column("budget", DECIMAL, "the department's monthly budget (empty: none)"),
    Column("variance", DECIMAL, "budget - net_spend: negative means over budget"),
    Column("budget_used_percent", DECIMAL, "net_spend / budget, one decimal"),
    Column("allocations", DECIMAL, "allocation entries on the team wallet in the month"),
    Column("wallet_balance_end", DECIMAL, "team wallet balance at the end of the period"),
    Column("cache_hits", INT, "requests the response cache answered (included in requests)"),
    Column("cache_saved", DECIMAL, "realised: what the hits would have cost, less the cache price"),
    Column("cache_would_save", DECIMAL, "repeated prompts the provider answered again: potential"),
]


def columns(ctx: ExportContext) -> list[Column]:
    return COLUMNS


def months(date_from: date, date_to: date) -> list[tuple[date, date]]:
    """Calendar months overlapping the range, each clipped to it."""
    out = []
    day = date_from
    while day <= date_to:
        last = min(month_end(day), date_to)
        out.append((day, last))
        day = last + timedelta(days=1)
    return out


def _departments(ctx: ExportContext) -> dict:
    qs = Department.objects.filter(organization=ctx.organization)
    if ctx.department is not None:
        qs = qs.filter(pk=ctx.department.pk)
    return {d.pk: d for d in qs}


def count(ctx: ExportContext) -> int:
    # Rows come from a handful of grouped queries: counting them means building them.
    return sum(1 for _ in rows(ctx, Totals()))


def _ledger(ctx, start, end, kinds, scope=None):
    qs = LedgerEntry.objects.filter(
        organization=ctx.organization, created_at__lt=end, created_at__gte=start
    )
    if kinds:
        qs = qs.filter(kind__in=kinds)
    if scope:
        qs = qs.filter(wallet__scope=scope)
    if ctx.department is not None:
        qs = qs.filter(wallet__department=ctx.department)
    return {
        (r["wallet__department_id"], r["currency"]): r["total"]
        for r in qs.values("wallet__department_id", "currency").annotate(total=Sum("amount"))
    }


def _team_balances_at(ctx, end) -> dict:
    """Each team wallet's balance at `end`: its balance now (the sum of its ledger, the ledger's
    rule) less the entries from `end` on, in one statement (one snapshot). Reads the entries
    after the period by the wallet's time index, not the whole history before it."""
    after = (
        LedgerEntry.objects.filter(wallet=OuterRef("pk"), created_at__gte=end)
        .order_by()
        .values("wallet")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    wallets = Wallet.objects.filter(organization=ctx.organization, scope=Wallet.Scope.TEAM)
    if ctx.department is not None:
        wallets = wallets.filter(department=ctx.department)
    wallets = wallets.annotate(after=Coalesce(Subquery(after), ZERO, output_field=AmountField()))
    balances = defaultdict(lambda: ZERO)
    for department_id, currency, balance, later in wallets.values_list(
        "department_id", "currency", "balance", "after"
    ):
        balances[(department_id, currency)] += balance - later
    return balances


def rows(ctx: ExportContext, totals: Totals) -> Iterator[tuple]:
    org = ctx.organization
    totals.differences.append(("net_spend", "spend", "refunds"))
    departments = _departments(ctx)
    budgets = {
        b.department_id: b
        for b in Budget.objects.filter(
            organization=org, period=Budget.Period.MONTH, department__in=list(departments)
        )
    }
    team_wallets = {
        (w.department_id, w.currency)
        for w in Wallet.objects.filter(
            organization=org, scope=Wallet.Scope.TEAM, department__in=list(departments)
        )
    }
    for first, last in months(ctx.date_from, ctx.date_to):
        start, end = day_range(org, first, last)
        scope = {
            "organization": org,
            "date_from": first,
            "date_to": last,
            "department": ctx.department,
        }
        spend = {
            (r["department_id"], r["currency"]): r
            for r in spend_grouped(fields=["department_id", "currency"], **scope)
        }
        by_provider = _split(
            spend_grouped(fields=["department_id", "currency", "provider"], **scope), "provider"
        )
        by_model = _split(
            spend_grouped(fields=["department_id", "currency", "model_requested"], **scope),
            "model_requested",
        )
        would = repeats_by(field=("department_id", "currency"), **scope)
        refunds = _ledger(ctx, start, end, [LedgerEntry.Kind.REFUND])
        allocations = _ledger(ctx, start, end, [LedgerEntry.Kind.ALLOCATION], Wallet.Scope.TEAM)
        balances = _team_balances_at(ctx, end)

        keys = set(spend) | set(refunds) | set(allocations) | team_wallets
        keys |= {(b.department_id, b.currency) for b in budgets.values()}
        keys |= {(pk, org.currency) for pk in departments if not any(k[0] == pk for k in keys)}
        keys = {k for k in keys if k[0] is None or k[0] in departments}

        def order(key, departments=departments):
            dept = departments.get(key[0])
            return (dept is None, dept.team_id if dept else "", key[1])

        for key in sorted(keys, key=order):
            dept_id, currency = key
            dept = departments.get(dept_id)
            s = spend.get(key, {})
            gross = s.get("cost", ZERO)
            refund = refunds.get(key, ZERO)
            # The row must add up as printed: net and variance come from the rounded figures.
            net = to_cents(gross) - to_cents(refund)
            budget = budgets.get(dept_id)
            budget_amount = budget.amount if budget and budget.currency == currency else None
            allocated = allocations.get(key, ZERO)
            balance = balances.get(key, ZERO) if key in team_wallets else None
            prompt, completion = s.get("prompt_tokens") or 0, s.get("completion_tokens") or 0
            saved = s.get("cache_saved", ZERO)
            would_save = would.get(key, Repeats()).repeated_cost

            totals.add(currency, "spend", gross)
            totals.add(currency, "refunds", refund)
            totals.add(currency, "allocations", allocated)
            totals.add(currency, "cache_saved", saved)
            totals.add(currency, "cache_would_save", would_save)
            totals.count(currency, "cache_hits", s.get("cache_hits", 0))
            totals.count(currency, "requests", s.get("requests", 0))
            totals.count(currency, "tokens", prompt + completion)
            yield (
                f"{first:%Y-%m}",
                first.isoformat(),
                last.isoformat(),
                dept.team_id if dept else "",
                dept.name if dept else NO_DEPARTMENT,
                currency,
                s.get("requests", 0),
                s.get("failed_requests", 0),
                prompt,
                s.get("cached_tokens") or 0,
                completion,
                prompt + completion,
                to_cents(gross),
                to_cents(refund),
                net,
                by_provider.get(key, {}),
                by_model.get(key, {}),
                to_cents(budget_amount) if budget_amount is not None else None,
                to_cents(budget_amount) - net if budget_amount is not None else None,
                _percent(net, budget_amount),
                to_cents(allocated),
                to_cents(balance) if balance is not None else None,
                s.get("cache_hits", 0),
                to_cents(saved),
                to_cents(would_save),
            )


def _split(grouped: list[dict], field: str) -> dict:
    out = defaultdict(dict)
    for r in grouped:
        out[(r["department_id"], r["currency"])][r[field] or ""] = str(to_cents(r["cost"]))
    return out


def _percent(net: Decimal, budget: Decimal | None) -> Decimal | None:
    if not budget:
        return None
    return (net * 100 / budget).quantize(Decimal("0.1"), rounding=ROUNDING)
