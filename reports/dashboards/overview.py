"""The overview page: departments side by side for one month."""

from datetime import date

from chargeback.money import ZERO, to_cents
from chargeback.periods import month_end
from reports.dashboards import charts
from reports.dashboards import selectors as sel
from reports.dashboards.tables import Column, Table, money, month_label


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
        cache_saved = sel.cache_saved_total(**scope)
    else:
        total = sum((spend[d.team_id]["cost"] for d in visible if d.team_id in spend), ZERO)
        cache_saved = sum(
            (spend[d.team_id]["cache_saved"] for d in visible if d.team_id in spend), ZERO
        )

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
                "cache_hits": row.get("cache_hits", 0),
                "cache_saved": to_cents(row.get("cache_saved", ZERO)),
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
            Column("cache_hits", "Cache hits", "int"),
            Column("cache_saved", "Cache saved", "money"),
        ],
        rows,
        footer={"name": "Total", "spend": to_cents(total), "cache_saved": to_cents(cache_saved)},
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
        # Summed at full precision, rounded once (rows are rounded each).
        "cache_savings": to_cents(
            sum((repeats.get(d.pk, sel.Repeats()).repeated_cost for d in visible), ZERO)
        ),
        "cache_saved": to_cents(cache_saved),
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
                    "display": f"{money(r['cache_savings'])} ({charts.percent(r['repeat_rate'])})"
                    + (f" · saved {money(r['cache_saved'])}" if r["cache_hits"] else ""),
                    "color": "#10b981",
                }
                for r in rows
            ],
            title="Cacheable repeats: what caching would save, and what the cache saved",
            width=545,
            label_width=190,
        ),
    }
