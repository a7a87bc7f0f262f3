"""The ``taskgrouper`` console script: library commands plus the service commands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from grouping.cli import register_all
from grouping.errors import InputError

#: service-side modules contributing sub-commands (each has ``register(subparsers)``)
SERVICE_COMMAND_MODULES: tuple[str, ...] = ("service.commands",)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser of ``taskgrouper``."""
    parser = argparse.ArgumentParser(
        prog="taskgrouper",
        description="Decide which tasks to train together under an inference-cost budget.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_all(sub)
    for name in SERVICE_COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn :class:`InputError` into a message and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except InputError as exc:
        print(f"taskgrouper {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"taskgrouper {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
