"""The department page: one department's month in detail."""

from datetime import date

from chargeback.money import ZERO, to_cents
from chargeback.periods import local_today, month_end
from reports.dashboards import charts
from reports.dashboards import selectors as sel
from reports.dashboards.policies import policy_table
from reports.dashboards.tables import Column, Table, money


def department_page(*, organization, department, month: date, as_of: date | None = None) -> dict:
    """One department's month: by model, provider, user and day, budget line and forecast,
    repeated prompts and what caching them would save, premium-model share, and what each
    routing policy saved."""
    date_from, date_to = month, month_end(month)
    days_in_month = date_to.day
    if as_of is None:
        as_of = min(local_today(organization), date_to)
    as_of = max(min(as_of, date_to), date_from)
    elapsed = (as_of - date_from).days + 1
    scope = {
        "organization": organization,
        "date_from": date_from,
        "date_to": date_to,
        "department": department,
    }
    # Everything on the page is as of `as_of` (the whole month once it is over).
    scope["date_to"] = as_of
    spend = spend_to_date = sel.spend_total(**scope)
    budget = sel.budgets_by_department(organization=organization).get(department.pk)
    forecast = sel.forecast_month_end(
        spend_to_date=spend_to_date, elapsed_days=elapsed, days_in_month=days_in_month
    )
    premium = sel.premium_spend_by_department(**scope).get(department.pk, ZERO)
    repeats = sel.repeats_by_department(**scope).get(department.pk, sel.Repeats())
    cache_saved = sel.cache_saved_total(**scope)
    daily = sel.daily_spend(**scope)
    daily += [(day, None) for day in _days_after(as_of, date_to)]

    def grouped(name, title, field, first, limit=None):
        rows = sel.spend_by(field=field, **scope)
        table = Table(
            name,
            title,
            [
                Column("key", first),
                Column("requests", "Requests", "int"),
                Column("prompt_tokens", "Prompt tokens", "int"),
                Column("completion_tokens", "Completion tokens", "int"),
                Column("cost", "Spend", "money"),
                Column("share", "Share", "percent"),
            ],
        )
        for r in rows[:limit]:
            table.rows.append(
                {
                    **r,
                    "key": r["key"] or "(none)",
                    "prompt_tokens": r["prompt_tokens"] or 0,
                    "completion_tokens": r["completion_tokens"] or 0,
                    "share": sel.share(r["cost"], spend),
                    "cost": to_cents(r["cost"]),
                }
            )
        return table

    models = grouped("models", "By model", "model_requested", "Model")
    caching = _caching_by_model(scope, models)
    providers = grouped("providers", "By provider", "provider", "Provider")
    users = grouped("users", "Top users", "user", "User", limit=15)
    daily_table = Table(
        "daily",
        "By day",
        collapsed=True,
        columns=[
            Column("day", "Day"),
            Column("cost", "Spend", "money"),
            Column("cumulative", "Month to date", "money"),
            Column("budget_line", "Budget pro rata", "money"),
        ],
    )
    running = ZERO
    for day, cost in daily:
        if cost is None:
            continue
        running += cost
        daily_table.rows.append(
            {
                "day": day.isoformat(),
                "cost": to_cents(cost),
                "cumulative": to_cents(running),
                "budget_line": to_cents(budget * day.day / days_in_month) if budget else None,
            }
        )
    repeated = Table(
        "repeats",
        "Most repeated prompts",
        [
            Column("fingerprint", "Prompt fingerprint"),
            Column("requests", "Times asked", "int"),
            Column("cost", "Spend", "money"),
            Column("savings", "Caching would save", "money"),
        ],
        sel.top_repeated_prompts(**scope),
    )
    policies, policy_saved = policy_table(**scope)
    figures = {
        "spend": to_cents(spend),
        "spend_to_date": to_cents(spend_to_date),
        "budget": to_cents(budget) if budget is not None else None,
        "used": sel.share(spend, budget) if budget else None,
        "budget_to_date": to_cents(budget * elapsed / days_in_month) if budget else None,
        "forecast": forecast,
        "forecast_over": budget is not None and forecast > budget,
        "as_of": as_of,
        "elapsed": elapsed,
        "days_in_month": days_in_month,
        "complete": elapsed == days_in_month,
        "requests": sum(r["requests"] for r in models.rows),
        "premium_share": sel.share(premium, spend),
        "premium_spend": to_cents(premium),
        "premium_models": sel.premium_models(**scope),
        "repeat_rate": repeats.rate,
        "repeated": repeats.repeated,
        "repeat_requests": repeats.requests,
        "cache_savings": repeats.savings,
        "cache_saved": to_cents(cache_saved),
        "cache_hits": sum(r["cache_hits"] for r in caching.rows),
        "policy_saved": to_cents(policy_saved),
        "policy_requests": sum(r["requests"] for r in policies.rows),
    }
    return {
        **figures,
        "tables": [models, providers, users, daily_table, repeated, caching, policies],
        "charts": _department_charts(figures, daily, budget, models, providers, users),
    }


def _caching_by_model(scope: dict, models: Table) -> Table:
    """Per model: what the response cache saved (its hits, net of the cache price) next to what
    caching would still save (repeated prompts the provider answered again)."""
    would = sel.repeats_by(field="model_requested", **scope)
    table = Table(
        "caching",
        "Response cache by model",
        [
            Column("key", "Model"),
            Column("cache_hits", "Cache hits", "int"),
            Column("cache_saved", "Cache saved", "money"),
            Column("repeated", "Repeats not cached", "int"),
            Column("would_save", "Caching would save", "money"),
        ],
    )
    for r in models.rows:
        rep = would.get(r["key"], sel.Repeats())
        table.rows.append(
            {
                "key": r["key"],
                "cache_hits": r["cache_hits"],
                "cache_saved": to_cents(r["cache_saved"]),
                "repeated": rep.repeated,
                "would_save": rep.savings,
            }
        )
    return table


def _days_after(day: date, last: date) -> list[date]:
    return [date.fromordinal(n) for n in range(day.toordinal() + 1, last.toordinal() + 1)]


def _department_charts(figures, daily, budget, models, providers, users) -> dict:
    labels = [f"{d.day}" for d, _ in daily]
    days = figures["days_in_month"]
    cumulative, running = [], ZERO
    for _day, cost in daily:
        running += cost or ZERO
        cumulative.append(running if cost is not None else None)
    series = [
        {"name": "Spend, month to date", "values": cumulative, "color": "#4f46e5", "end_dot": True}
    ]
    if budget:
        series.append(
            {
                "name": f"Budget pro rata ({money(budget)} a month)",
                "values": [budget * n / days for n in range(1, days + 1)],
                "color": "#9ca3af",
                "dashed": True,
                "width": 2,
            }
        )
    if not figures["complete"]:
        start = figures["elapsed"] - 1
        rate = figures["forecast"] / days
        series.append(
            {
                "name": f"Forecast {money(figures['forecast'])}",
                "values": [rate * (n + 1) if n >= start else None for n in range(days)],
                "color": charts.OVER if figures["forecast_over"] else "#f59e0b",
                "dashed": True,
                "end_dot": True,
            }
        )
    weekend = ["#c7d2fe" if d.weekday() >= 5 else "#6366f1" for d, _ in daily]
    bars = lambda table: [  # noqa: E731
        {
            "label": r["key"],
            "value": r["cost"],
            "display": f"{money(r['cost'])} · {charts.percent(r['share'])}",
            "color": charts.color(n),
        }
        for n, r in enumerate(table.rows)
    ]
    return {
        "trend": charts.line_chart(
            labels, series, title="Month to date vs budget", label_every=5, height=280
        ),
        "daily": charts.column_chart(
            labels,
            [
                {
                    "name": "spend",
                    "values": [c or ZERO for _, c in daily],
                    "colors": weekend,
                    "displays": [money(c or ZERO) for _, c in daily],
                }
            ],
            title="Spend per day",
            label_every=5,
            height=200,
        ),
        "models": charts.hbar_chart(bars(models), title="Spend by model", width=545),
        "providers": charts.hbar_chart(bars(providers), title="Spend by provider", width=545),
        "users": charts.hbar_chart(bars(users)[:10], title="Top users", width=545),
        "premium": charts.donut_chart(
            [
                {
                    "label": "Premium models",
                    # Shares, not cents: the ring agrees with the KPI even under a cent.
                    "value": figures["premium_share"],
                    "display": money(figures["premium_spend"]),
                    "color": "#8b5cf6",
                },
                {
                    "label": "Other models",
                    "value": 1 - figures["premium_share"]
                    if figures["premium_share"] or figures["spend"]
                    else 0,
                    "display": money(figures["spend"] - figures["premium_spend"]),
                    "color": "#d1d5db",
                },
            ],
            title="Premium-model share",
            center=charts.percent(figures["premium_share"]),
            sub="premium",
        ),
        "repeats": charts.donut_chart(
            [
                {
                    "label": "First asks",
                    "value": figures["repeat_requests"] - figures["repeated"],
                    "display": f"{figures['repeat_requests'] - figures['repeated']:,}",
                    "color": "#a7f3d0",
                },
                {
                    "label": "Repeats (cacheable)",
                    "value": figures["repeated"],
                    "display": f"{figures['repeated']:,}",
                    "color": "#10b981",
                },
            ],
            title="Repeated prompts",
            center=charts.percent(figures["repeat_rate"], 1),
            sub="repeated",
        ),
    }
