"""`kt spend --by team|model|provider|user|group --month YYYY-MM`: one month's spend as a table."""

import json

from kt import tables
from kt.client import request

BY = ["team", "model", "provider", "user", "group"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "spend", help="spend of one month grouped by team, model, provider, user or consumer group"
    )
    parser.add_argument("--by", choices=BY, default="team", help="grouping (default: team)")
    parser.add_argument("--month", help="YYYY-MM (default: the current month)")
    parser.add_argument("--json", action="store_true", help="print the server's JSON instead")
    parser.set_defaults(handler=spend)


def spend(args) -> int:
    params = {"by": args.by}
    if args.month:
        params["month"] = args.month
    data = request("GET", "/v1/spend", params=params).json()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(render_table(data))
    return 0


def render_table(data: dict) -> str:
    """Aligned columns; amounts are the server's, already rounded to the cent."""
    currency = data["currency"]
    header = [
        data["by"],
        f"spend ({currency})",
        "share",
        "requests",
        "tokens",
        "cache saved",
        "would save",
    ]
    rows = [
        [
            row["key"] or "(none)",
            _amount(row["cost"]),
            f"{row['share_percent']} %",
            f"{row['requests']:,}",
            f"{row['prompt_tokens'] + row['completion_tokens']:,}",
            _amount(row.get("cache_saved", "0.00")),
            _amount(row.get("cache_would_save", "0.00")),
        ]
        for row in data["rows"]
    ]
    footer = [
        "total",
        _amount(data["total"]),
        "",
        f"{data['requests']:,}",
        "",
        _amount(data.get("cache_saved", "0.00")),
        _amount(data.get("cache_would_save", "0.00")),
    ]
    table = [header, *rows, footer]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    title = f"Spend by {data['by']}, {data['month']}"
    return "\n".join([title, "", line(header), rule, *map(line, rows), rule, line(footer)])


def _amount(value: str) -> str:
    """'28000.00' -> '28,000.00' without going through float (kt/tables.py)."""
    return tables.amount(value)
