"""`kt config validate FILE` and `kt config apply FILE [--dry-run]`: send a config file to the
server, which checks it against the admin token's organization and prints the change report."""

import sys
from pathlib import Path

from kt.client import CliError, request


def register(subparsers) -> None:
    parser = subparsers.add_parser("config", help="validate or apply a config file (YAML)")
    commands = parser.add_subparsers(dest="config_command", required=True)

    validate = commands.add_parser("validate", help="check a file; print what apply would change")
    validate.add_argument("file", help="path to the YAML file, or - for standard input")
    validate.set_defaults(handler=lambda args: _send(args, "/v1/config/validate"))

    apply = commands.add_parser("apply", help="apply a file to the organization (idempotent)")
    apply.add_argument("file", help="path to the YAML file, or - for standard input")
    apply.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    apply.set_defaults(handler=lambda args: _send(args, "/v1/config/apply"))


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None


def _send(args, endpoint: str) -> int:
    text = _read(args.file)
    params = {"dry_run": "true"} if getattr(args, "dry_run", False) else None
    try:
        response = request("POST", endpoint, json={"yaml": text}, params=params)
    except CliError as exc:
        message = str(exc)
        # The server's 400 already names the key path and line; say which file it is about.
        if message.startswith("400: "):
            raise CliError(f"{args.file}: {message.removeprefix('400: ')}") from None
        raise
    body = response.json()
    if endpoint.endswith("validate"):
        print(f"{args.file}: valid")
    print(body["report"])
    return 0
