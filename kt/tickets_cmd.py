"""`kt cost-tickets list|approve|deny`: the requests no wallet could cover, waiting for finance
(docs/cli.md). Tables by default, `--json` for the server's JSON."""

import json

from kt import tables
from kt.client import CliError, request


def register(subparsers) -> None:
    group = subparsers.add_parser(
        "cost-tickets", help="cost tickets: list the pending queue, approve or deny"
    )
    commands = group.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="the organization's cost tickets, newest first")
    listing.add_argument(
        "--status",
        default="pending",
        choices=["pending", "approved", "denied", "expired", "redeemed", "cancelled", "all"],
        help="default: pending",
    )
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print the server's JSON")
    listing.set_defaults(handler=cmd_list)

    for action, text in (
        ("approve", "let the ticket's retry through once (its estimate as an overdraft)"),
        ("deny", "refuse the ticket"),
    ):
        decide = commands.add_parser(action, help=text)
        decide.add_argument("ticket_ids", nargs="+", metavar="TICKET_ID", help="tkt_...")
        decide.add_argument("--json", action="store_true")
        decide.set_defaults(handler=cmd_decide, action=action)


def _json(response) -> dict:
    try:
        return response.json()
    except ValueError:
        raise CliError(f"{response.url} did not answer with JSON (is KT_URL right?)") from None


def cmd_list(args) -> int:
    params = {"limit": args.limit}
    if args.status != "all":
        params["status"] = args.status
    page = _json(request("GET", "/v1/cost-tickets", params=params))
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    rows = [
        (
            t["id"],
            t["status"],
            t["team_id"] or "-",
            t["user_id"] or "-",
            t["model"],
            tables.amount(t["estimate"]),
            t["currency"],
            t["created_at"][:16].replace("T", " "),
            t["expires_at"][:16].replace("T", " "),
        )
        for t in page["results"]
    ]
    headers = ("ticket", "status", "team", "user", "model", "estimate", "cur", "opened", "expires")
    print(tables.table(headers, rows, right=(5,)))
    return 0


def cmd_decide(args) -> int:
    decided = []
    for ticket_id in args.ticket_ids:
        ticket = _json(request("POST", f"/v1/cost-tickets/{ticket_id}/{args.action}"))
        decided.append(ticket)
        if not args.json:
            print(
                f"{ticket['id']}: {ticket['status']} ({tables.amount(ticket['estimate'])} "
                f"{ticket['currency']}, {ticket['team_id'] or 'no team'})"
            )
    if args.json:
        print(json.dumps(decided, indent=2))
    return 0
