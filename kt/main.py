"""`kt`: the command line of the chargeback portal, a client of the management API over HTTP
(it imports nothing of the server). Each command group is a module with
`register(subparsers)`; a command's handler takes the parsed args and returns an exit code."""

import argparse
import os
import sys

from kt import config_cmd, export_jobs_cmd, secrets_cmd, spend_cmd, wallets_cmd
from kt.client import CliError, fail

# Command groups, each a module of this package with a `register(subparsers)` function.
GROUPS = [config_cmd, secrets_cmd, wallets_cmd, export_jobs_cmd, spend_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kt",
        description="AI spend chargeback portal. KT_URL and KT_TOKEN configure the server and admin token.",
    )
    subparsers = parser.add_subparsers(dest="group", required=True)
    for module in GROUPS:
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
    except BrokenPipeError:  # `kt spend ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
