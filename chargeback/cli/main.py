"""`kt`: the command line of the chargeback portal. Each command group is a module with
`register(subparsers)`; a command's handler takes the parsed args and returns an exit code."""

import argparse
import importlib
import sys

from chargeback.cli.client import CliError, fail

# Command groups, each `chargeback/cli/<module>.py` with a `register(subparsers)` function.
GROUPS = ["config_cmd", "secrets_cmd", "wallets_cmd", "export_jobs_cmd", "spend_cmd"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kt",
        description="AI spend chargeback portal. KT_URL and KT_TOKEN configure the server and admin token.",
    )
    subparsers = parser.add_subparsers(dest="group", required=True)
    for name in GROUPS:
        try:
            module = importlib.import_module(f"chargeback.cli.{name}")
        except ModuleNotFoundError:
            continue
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except CliError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted")


if __name__ == "__main__":
    sys.exit(main())
