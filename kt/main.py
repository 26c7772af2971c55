"""`kt`: the command line of the chargeback portal, a client of the management API over HTTP
(it imports nothing of the server). Each command group is a module with
`register(subparsers)`; a command's handler takes the parsed args and returns an exit code."""

import argparse
import os
import sys

from kt import config_cmd, export_jobs_cmd, secrets_cmd, spend_cmd, tickets_cmd, wallets_cmd
from kt.client import CliError, fail

# Command groups, each a module of this package with a `register(subparsers)` function.
GROUPS = [config_cmd, secrets_cmd, wallets_cmd, export_jobs_cmd, spend_cmd, tickets_cmd]


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
        code = args.handler(args) or 0
        # Inside the try: output still buffered would otherwise fail at exit, as a traceback.
        sys.stdout.flush()
        return code
    except CliError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted")
    except BrokenPipeError:  # `kt spend ... | head`: the reader has what it wanted
        _stdout_to_devnull()
        return 0


def _stdout_to_devnull() -> None:
    """Whatever is still buffered for a reader that has gone goes nowhere, quietly (Python
    flushes stdout once more at exit)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
