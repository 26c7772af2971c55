"""What each dashboard page shows: figures, tables (the same rows feed the HTML and the CSV
download) and charts. Amounts are summed at full precision and rounded once with `to_cents`."""

from dataclasses import dataclass, field
from datetime import date

from chargeback.money import ZERO, to_cents
from chargeback.periods import local_today, month_end
from reports.dashboards import charts
from reports.dashboards import selectors as sel


@dataclass
class Column:
    key: str
    title: str
    kind: str = "text"  # text, money, int, percent
    html: bool = True  # False: in the CSV download only


@dataclass
class Table:
    name: str  # the ?table= value of its CSV download
    title: str
    columns: list[Column]
    rows: list[dict] = field(default_factory=list)
    footer: dict | None = None
    collapsed: bool = False  # long tables start folded on the page


def money(value) -> str:
    return f"${to_cents(value):,.2f}"


def month_label(month: date) -> str:
    return month.strftime("%B %Y")


# --- overview -----------------------------------------------------------------------------------


def overview_page(
    *, organization, departments, month: date, full_access: bool, query: str = ""
) -> dict:
    """Departments side by side for one month: spend vs budget, share, month-over-month change,
    premium-model share and cacheable repeats."""
    date_from, date_to = month, month_end(month)
    previous = sel.month_previous(month)
    scope = {"organization": organization, "date_from": date_from, "date_to": date_to}
    spend = {r["key"]: r for r in sel.spend_by(field="department__team_id", **scope)}
    before = {
        r["key"]: r["cost"]
        for r in sel.spend_by(
            organization=organization,
            date_from=previous,
            date_to=month_end(previous),
            field="department__team_id",
        )
    }
    budgets = sel.budgets_by_department(organization=organization)
    premium = sel.premium_spend_by_department(**scope)
    repeats = sel.repeats_by_department(**scope)
    visible = list(departments)
    if full_access:
        total = sel.spend_total(**scope)
    else:
        total = sum((spend[d.team_id]["cost"] for d in visible if d.team_id in spend), ZERO)

    rows = []
    for dept in visible:
        row = spend.get(dept.team_id, {})
        cost = row.get("cost", ZERO)
        budget = budgets.get(dept.pk)
        rep = repeats.get(dept.pk, sel.Repeats())
        prev = before.get(dept.team_id, ZERO)
        rows.append(
            {
                "team_id": dept.team_id,
                "name": dept.name,
                "spend": to_cents(cost),
                "budget": to_cents(budget) if budget is not None else None,
                "used": sel.share(cost, budget) if budget else None,
                "share": sel.share(cost, total),
                "previous": to_cents(prev),
                "change": (cost - prev) / prev if prev else None,
                "requests": row.get("requests", 0),
                "premium_share": sel.share(premium.get(dept.pk, ZERO), cost),
                "repeat_rate": rep.rate,
                "cache_savings": rep.savings,
            }
        )
    rows.sort(key=lambda r: (-r["spend"], r["name"]))
    for n, row in enumerate(rows):
        row["color"] = charts.color(n)

    table = Table(
        "departments",
        f"Departments, {month_label(month)}",
        [
            Column("name", "Department"),
            Column("team_id", "Team id", html=False),
            Column("spend", "Spend", "money"),
            Column("budget", "Budget", "money"),
            Column("used", "Budget used", "percent"),
            Column("share", "Share of total", "percent"),
            Column("previous", f"{previous:%B}", "money"),
            Column("change", "Change", "percent"),
            Column("requests", "Requests", "int"),
            Column("premium_share", "Premium models", "percent"),
            Column("repeat_rate", "Repeated prompts", "percent"),
            Column("cache_savings", "Caching would save", "money"),
        ],
        rows,
        footer={"name": "Total", "spend": to_cents(total)},
    )
    by_spend = {r["team_id"]: n for n, r in enumerate(rows)}
    ordered = sorted(visible, key=lambda d: by_spend[d.team_id])
    months = _months_table(organization=organization, month=month, departments=ordered)
    return {
        "total": to_cents(total),
        "previous_total": to_cents(sum(before.get(d.team_id, ZERO) for d in visible)),
        "rows": rows,
        "tables": [table, months],
        "charts": _overview_charts(rows, month, previous, query),
        "budget_total": to_cents(sum((r["budget"] or ZERO) for r in rows)),
        "over_budget": [r["name"] for r in rows if r["used"] is not None and r["used"] > 1],
        "cache_savings": to_cents(sum(r["cache_savings"] for r in rows)),
    }


def _months_table(*, organization, month, departments) -> Table:
    months = sel.months_back(month, 6)
    data = sel.spend_by_department_months(
        organization=organization, months=months, departments=departments
    )
    first = next((m for m in months if data[m]), month)
    months = [m for m in months if m >= first]
    columns = [Column("month", "Month")] + [Column(d.team_id, d.name, "money") for d in departments]
    rows = []
    for m in months:
        row = {"month": m.strftime("%Y-%m")}
        row.update({d.team_id: to_cents(data[m].get(d.team_id, ZERO)) for d in departments})
        row["total"] = to_cents(sum(data[m].values(), ZERO))
        rows.append(row)
    columns.append(Column("total", "Total", "money"))
    return Table("months", "Spend by month", columns, rows)


def _overview_charts(rows, month, previous, query) -> dict:
    link = "departments/{}/?" + (query or f"month={month:%Y-%m}")
    budget_bars = [
        {
            "label": r["name"],
            "value": r["spend"],
            "display": money(r["spend"])
            + (f" / {charts.percent(r['used'])}" if r["used"] is not None else ""),
            "display_color": charts.OVER if r["used"] and r["used"] > 1 else charts.INK,
            "marker": r["budget"],
            "marker_label": f"budget {money(r['budget'])}" if r["budget"] else "",
            "color": charts.OVER if r["used"] and r["used"] > 1 else r["color"],
            "href": link.format(r["team_id"]),
        }
        for r in rows
    ]
    return {
        "budget": charts.hbar_chart(budget_bars, title="Spend vs budget"),
        "share": charts.donut_chart(
            [
                {
                    "label": r["name"],
                    "value": r["spend"],
                    "display": charts.percent(r["share"], 1),
                    "color": r["color"],
                }
                for r in rows
                if r["spend"] > 0
            ],
            title="Share of total spend",
            center=charts.money_short(sum(r["spend"] for r in rows)),
            sub=f"{month:%B %Y}",
        ),
        "trend": charts.column_chart(
            [r["name"].split(" ")[0] for r in rows],
            [
                {
                    "name": f"{previous:%B}",
                    "values": [r["previous"] for r in rows],
                    "color": "#c7d2fe",
                    "displays": [money(r["previous"]) for r in rows],
                },
                {
                    "name": f"{month:%B}",
                    "values": [r["spend"] for r in rows],
                    "color": "#4f46e5",
                    "displays": [money(r["spend"]) for r in rows],
                },
            ],
            title="Month over month",
            width=545,
            height=250,
        ),
        "premium": charts.hbar_chart(
            [
                {
                    "label": r["name"],
                    "value": r["premium_share"],
                    "display": charts.percent(r["premium_share"]),
                    "color": "#8b5cf6",
                }
                for r in rows
            ],
            title="Premium-model share of spend",
            width=545,
            label_width=190,
        ),
        "repeats": charts.hbar_chart(
            [
                {
                    "label": r["name"],
                    "value": r["cache_savings"],
                    "display": f"{money(r['cache_savings'])} ({charts.percent(r['repeat_rate'])})",
                    "color": "#10b981",
                }
                for r in rows
            ],
            title="Cacheable repeats: what caching would save",
            width=545,
            label_width=190,
        ),
    }


# --- department ---------------------------------------------------------------------------------


def department_page(*, organization, department, month: date, as_of: date | None = None) -> dict:
    """One department's month: by model, provider, user and day, budget line and forecast,
    repeated prompts and what caching them would save, premium-model share."""
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
    }
    return {
        **figures,
        "tables": [models, providers, users, daily_table, repeated],
        "charts": _department_charts(figures, daily, budget, models, providers, users),
    }


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
                    "value": figures["premium_spend"],
                    "display": money(figures["premium_spend"]),
                    "color": "#8b5cf6",
                },
                {
                    "label": "Other models",
                    "value": figures["spend"] - figures["premium_spend"],
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
