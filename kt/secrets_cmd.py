"""`kt provider-secrets list|show|set|delete`: the organization's stored provider keys.

The value is never an argument (it would stay in the shell history and in `ps`): `set` reads it
from standard input, from a prompt that does not echo, or from a variable of kt's own
environment (`--from-env`). Nothing prints it back; the server keeps only its last 4 characters.
"""

import getpass
import json
import os
import sys
from urllib.parse import quote

from kt.client import CliError, request

PATH = "/v1/provider-secrets"


def register(subparsers) -> None:
    group = subparsers.add_parser(
        "provider-secrets", help="provider API keys stored encrypted for the organization"
    )
    commands = group.add_subparsers(dest="command", required=True)

    lst = commands.add_parser("list", help="names, last characters, when set, which targets")
    lst.add_argument("--json", action="store_true", help="print the raw JSON")
    lst.set_defaults(handler=cmd_list)

    show = commands.add_parser("show", help="one secret (never its value)")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)

    put = commands.add_parser("set", help="store a secret, or rotate it if the name exists")
    put.add_argument("name", help="e.g. openai-prod; referenced as secret_key_ref: {secret: NAME}")
    put.add_argument(
        "--from-env", metavar="VAR", help="read the value from this variable of kt's environment"
    )
    put.set_defaults(handler=cmd_set)

    delete = commands.add_parser("delete", help="delete a secret that no target uses")
    delete.add_argument("name")
    delete.set_defaults(handler=cmd_delete)


def _line(secret: dict) -> str:
    hint = f"…{secret['hint']}" if secret.get("hint") else "(set)"
    rotated = secret.get("rotated_at") or "never"
    users = ", ".join(secret.get("targets") or []) or "-"
    return f"{secret['name']:<24} {hint:<8} set {secret['created_at'][:19]}  rotated {rotated[:19]}  targets {users}"


def cmd_list(args) -> int:
    body = request("GET", PATH, params={"limit": 500}).json()
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    if not body["results"]:
        print("no provider secrets")
    for secret in body["results"]:
        print(_line(secret))
    return 0


def cmd_show(args) -> int:
    secret = request("GET", f"{PATH}/{quote(args.name, safe='')}").json()
    print(json.dumps(secret, indent=2) if args.json else _line(secret))
    return 0


def _value(args) -> str:
    if args.from_env:
        value = os.environ.get(args.from_env, "")
        if not value:
            raise CliError(f"{args.from_env} is not set in kt's environment")
        return value
    if sys.stdin.isatty():
        return getpass.getpass(f"value of {args.name} (not echoed): ")
    return sys.stdin.read()


def cmd_set(args) -> int:
    value = _value(args).strip()
    if not value:
        raise CliError("no value given (pipe it on standard input, or use --from-env VAR)")
    response = request("POST", PATH, json={"name": args.name, "value": value})
    secret = response.json()
    verb = "stored" if response.status_code == 201 else "rotated"
    hint = f" (…{secret['hint']})" if secret.get("hint") else ""
    print(f"{verb} provider secret {secret['name']}{hint}")
    return 0


def cmd_delete(args) -> int:
    request("DELETE", f"{PATH}/{quote(args.name, safe='')}")
    print(f"deleted provider secret {args.name}")
    return 0
