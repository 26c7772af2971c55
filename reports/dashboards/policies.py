"""The department page's routing-policy table: what each policy rule changed this month and
what it saved (gateway/policies.py records both on the event)."""

from chargeback.money import ZERO, to_cents
from gateway.selectors import savings_by_policy
from reports.dashboards.tables import Column, Table

RULES = {
    "alias": "alias to another model",
    "max_price": "over the price cap: downgraded",
    "premium_group": "premium model, group not listed: downgraded",
    "premium_share_cap": "premium share cap reached: downgraded",
}


def policy_table(**scope) -> tuple[Table, object]:
    """The table and the total saved (unrounded), for the department and month of `scope`."""
    table = Table(
        "policies",
        "Routing policies",
        [
            Column("policy", "Policy"),
            Column("rule", "Rule"),
            Column("requests", "Requests changed", "int"),
            Column("cost", "Spend", "money"),
            Column("saved", "Saved", "money"),
        ],
    )
    total = ZERO
    for row in savings_by_policy(**scope):
        name, _, rule = row["policy"].partition(":")
        total += row["saved"]
        table.rows.append(
            {
                "policy": name,
                "rule": RULES.get(rule, rule),
                "requests": row["requests"],
                "cost": to_cents(row["cost"]),
                "saved": to_cents(row["saved"]),
            }
        )
    if table.rows:
        table.footer = {"policy": "Total", "saved": to_cents(total)}
    return table, total
