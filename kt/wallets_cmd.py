"""`kt wallets allocate|credit|reclaim|refund|show|balance|ledger|transactions|list`: tables by default, `--json` for the
server's JSON. Amounts are sent as strings, exactly as typed (never through a float)."""

import json
from decimal import Decimal, InvalidOperation

from kt import tables
from kt.client import CliError, request


def register(subparsers) -> None:
    group = subparsers.add_parser(
        "wallets", help="prepaid wallets: allocate, reclaim, balance, ledger, transactions, list"
    )
    commands = group.add_subparsers(dest="command", required=True)

    allocate = commands.add_parser(
        "allocate", help="move funds from the organization's wallet to a team's"
    )
    allocate.add_argument("--team-id", required=True, help="e.g. team_engineering")
    allocate.add_argument("--amount", required=True, type=_amount, help="e.g. 20000.00")
    allocate.add_argument("--currency", help="e.g. USD (default: the organization's)")
    allocate.add_argument("--description", default="", help='e.g. "Engineering May 2026"')
    allocate.add_argument("--user-id", help="fund this end user's wallet instead of the team's")
    _idempotency(allocate)
    _json_flag(allocate)
    allocate.set_defaults(handler=cmd_allocate)

    credit = commands.add_parser("credit", help="add funds to the organization's wallet")
    credit.add_argument("--amount", required=True, type=_amount)
    credit.add_argument("--currency")
    credit.add_argument("--description", default="")
    _idempotency(credit)
    _json_flag(credit)
    credit.set_defaults(handler=cmd_credit)

    reclaim = commands.add_parser(
        "reclaim", help="move a team's unspent funds back to the organization's wallet"
    )
    reclaim.add_argument("--team-id", required=True)
    reclaim.add_argument("--amount", type=_amount, help="default: everything available")
    reclaim.add_argument("--description", default="")
    _idempotency(reclaim)
    _json_flag(reclaim)
    reclaim.set_defaults(handler=cmd_reclaim)

    refund = commands.add_parser("refund", help="give back (part of) what one call was charged")
    refund.add_argument("--request-id", required=True, help="the call's x-kt-request-id")
    refund.add_argument("--amount", type=_amount, help="default: all that is left to refund")
    refund.add_argument("--reason", required=True, help='e.g. "provider credit for an outage"')
    refund.add_argument("--team-id", help="check that the call was charged to this team")
    _idempotency(refund)
    _json_flag(refund)
    refund.set_defaults(handler=cmd_refund)

    show = commands.add_parser("show", help="a team's balance, held and available funds")
    _team_argument(show)
    _json_flag(show)
    show.set_defaults(handler=cmd_show)

    balance = commands.add_parser(
        "balance", help="the cascade: user, team and organization wallets, which one pays now"
    )
    balance.add_argument("--team-id", help="e.g. team_engineering (admin token)")
    balance.add_argument("--user-id", help="an end user: their wallet comes first")
    _json_flag(balance)
    balance.set_defaults(handler=cmd_balance)

    ledger = commands.add_parser("ledger", help="a team wallet's ledger, newest first")
    _team_argument(ledger)
    ledger.add_argument("--limit", type=int, default=20, help="entries to show (default 20)")
    ledger.add_argument("--offset", type=int, default=0)
    _json_flag(ledger)
    ledger.set_defaults(handler=cmd_ledger)

    transactions = commands.add_parser(
        "transactions", help="a team wallet's reserve/settle/release/... history, newest first"
    )
    _team_argument(transactions)
    transactions.add_argument(
        "--kind",
        action="append",
        choices=[
            "reserve",
            "settle",
            "release",
            "refund",
            "allocate",
            "reclaim",
            "credit",
            "adjust",
        ],
        help="only this kind (repeat for several)",
    )
    transactions.add_argument("--date-from", help="first day, e.g. 2026-05-01")
    transactions.add_argument("--date-to", help="last day, inclusive")
    transactions.add_argument("--limit", type=int, default=20, help="rows to show (default 20)")
    transactions.add_argument("--offset", type=int, default=0)
    _json_flag(transactions)
    transactions.set_defaults(handler=cmd_transactions)

    lst = commands.add_parser("list", help="every wallet with totals and status")
    lst.add_argument("--scope", choices=["organization", "team", "user"])
    lst.add_argument("--limit", type=int, default=500)
    _json_flag(lst)
    lst.set_defaults(handler=cmd_list)


def _amount(value: str) -> str:
    try:
        if not Decimal(value).is_finite():
            raise InvalidOperation
    except InvalidOperation:
        raise ValueError(value) from None
    return value


_amount.__name__ = "amount"  # argparse says "invalid amount value: 'x'"


def _idempotency(parser) -> None:
    parser.add_argument(
        "--idempotency-key",
        help="retrying with the same key never applies the request twice",
    )


def _json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the raw JSON")


def _team_argument(parser) -> None:
    parser.add_argument("team", nargs="?", metavar="TEAM_ID", help="e.g. team_engineering")
    parser.add_argument("--team-id", dest="team_option", help="the same, as an option")


def _team(args) -> str:
    team = args.team or args.team_option
    if not team:
        raise CliError("give a team id: kt wallets show team_engineering")
    return team


def _get_json(response) -> dict:
    try:
        return response.json()
    except ValueError:
        raise CliError(f"{response.url} did not answer with JSON (is KT_URL right?)") from None


def _print_json(data) -> None:
    print(json.dumps(data, indent=2))


# --- commands ----------------------------------------------------------------------------------


def _post_entry(path: str, body: dict, args) -> int:
    headers = {}
    if args.idempotency_key:
        headers["Idempotency-Key"] = args.idempotency_key
    response = request("POST", path, json=body, headers=headers)
    entry = _get_json(response)
    if args.json:
        _print_json(entry)
        return 0
    replayed = " (replayed: already applied)" if response.headers.get("Idempotent-Replayed") else ""
    owner = entry.get("team_id") or "organization"
    if entry.get("user_id"):
        owner = f"user {entry['user_id']} ({owner})"
    print(
        f"{entry['kind']} {tables.amount(entry['amount'])} {entry['currency']} -> {owner}: "
        f"balance {tables.amount(entry['balance'])}, "
        f"available {tables.amount(entry['available'])} "
        f"(entry {entry['id']}){replayed}"
    )
    return 0


def cmd_allocate(args) -> int:
    body = {"team_id": args.team_id, "amount": args.amount, "description": args.description}
    if args.currency:
        body["currency"] = args.currency
    if args.user_id:
        body["user_id"] = args.user_id
    return _post_entry("/v1/wallets/allocate", body, args)


def cmd_credit(args) -> int:
    body = {"amount": args.amount, "description": args.description}
    if args.currency:
        body["currency"] = args.currency
    return _post_entry("/v1/wallets/credit", body, args)


def cmd_reclaim(args) -> int:
    body = {"team_id": args.team_id, "description": args.description}
    if args.amount:
        body["amount"] = args.amount
    return _post_entry("/v1/wallets/reclaim", body, args)


def cmd_refund(args) -> int:
    body = {"request_id": args.request_id, "reason": args.reason}
    if args.amount:
        body["amount"] = args.amount
    if args.team_id:
        body["team_id"] = args.team_id
    return _post_entry("/v1/wallets/refund", body, args)


def cmd_show(args) -> int:
    wallet = _get_json(request("GET", f"/v1/wallets/{_team(args)}"))
    if args.json:
        _print_json(wallet)
        return 0
    rows = [
        ("team", wallet["team_id"]),
        ("currency", wallet["currency"]),
        ("balance", tables.amount(wallet["balance"])),
        ("held", tables.amount(wallet["held"])),
        ("available", tables.amount(wallet["available"])),
        ("total allocated", tables.amount(wallet["total_allocated"])),
        ("total spent", tables.amount(wallet["total_spent"])),
        ("status", wallet["status"]),
    ]
    print(tables.pairs(rows))
    return 0


def cmd_balance(args) -> int:
    params = {}
    if args.team_id:
        params["team_id"] = args.team_id
    if args.user_id:
        params["user_id"] = args.user_id
    summary = _get_json(request("GET", "/v1/wallets/balance", params=params))
    if args.json:
        _print_json(summary)
        return 0
    rows = [
        (
            s["scope"],
            s.get("name", "-"),
            s.get("balance", "-"),
            s.get("held", "-"),
            s.get("available", "-"),
            s.get("status") or s.get("skipped", ""),
            "*" if s["effective"] else "",
        )
        for s in summary["scopes"]
    ]
    _table(("scope", "name", "balance", "held", "available", "status", "pays"), rows)
    strict = "" if summary["fall_through"] else " (strict: the team wallet is a hard cap)"
    effective = summary["effective_scope"] or "none: no wallet has funds available"
    print(f"effective: {effective}; currency {summary['currency']}{strict}")
    return 0


def cmd_ledger(args) -> int:
    page = _get_json(
        request(
            "GET",
            f"/v1/wallets/{_team(args)}/ledger",
            params={"limit": args.limit, "offset": args.offset},
        )
    )
    if args.json:
        _print_json(page)
        return 0
    rows = [
        (
            e["created_at"][:19].replace("T", " "),
            e["kind"],
            tables.amount(e["amount"]),
            tables.amount(e["balance_after"]),
            e["currency"],
            e["reference"] or e["description"],
        )
        for e in page["results"]
    ]
    _table(("time (UTC)", "kind", "amount", "balance", "cur", "reference"), rows, money=(2, 3))
    shown = args.offset + len(rows)
    if shown < page["count"]:
        print(f"({shown} of {page['count']} entries; --offset {shown} for more)")
    return 0


def cmd_transactions(args) -> int:
    params = {"limit": args.limit, "offset": args.offset}
    if args.kind:
        params["kind"] = args.kind
    if args.date_from:
        params["date_from"] = args.date_from
    if args.date_to:
        params["date_to"] = args.date_to
    page = _get_json(request("GET", f"/v1/wallets/{_team(args)}/transactions", params=params))
    if args.json:
        _print_json(page)
        return 0
    rows = [
        (
            t["created_at"][:19].replace("T", " "),
            t["kind"],
            t["amount"],
            t["balance_after"] if t["balance_after"] is not None else "",
            t["currency"],
            t["reference"] or t["description"],
        )
        for t in page["results"]
    ]
    _table(("time (UTC)", "kind", "amount", "balance", "cur", "reference"), rows, money=(2,))
    shown = args.offset + len(rows)
    if shown < page["count"]:
        print(f"({shown} of {page['count']} transactions; --offset {shown} for more)")
    return 0


def cmd_list(args) -> int:
    params = {"limit": args.limit}
    if args.scope:
        params["scope"] = args.scope
    page = _get_json(request("GET", "/v1/wallets", params=params))
    if args.json:
        _print_json(page)
        return 0
    rows = [
        (
            w["scope"],
            w["name"],
            tables.amount(w["balance"]),
            tables.amount(w["reserved"]),
            tables.amount(w["available"]),
            tables.amount(w["total_allocated"]),
            tables.amount(w["total_spent"]),
            w["currency"],
            w["status"],
        )
        for w in page["results"]
    ]
    _table(
        (
            "scope",
            "name",
            "balance",
            "reserved",
            "available",
            "allocated",
            "spent",
            "cur",
            "status",
        ),
        rows,
        money=(2, 3, 4, 5, 6),
    )
    return 0


def _table(headers, rows, money=()) -> None:
    print(tables.table(headers, rows, right=money))
