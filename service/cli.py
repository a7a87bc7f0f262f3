"""The ``taskgrouper`` console script: library commands plus the service commands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from grouping.cli import COMMANDS as LIBRARY_COMMANDS
from grouping.errors import InputError

#: every sub-command -> the module whose ``register(subparsers)`` adds it (help order)
COMMANDS: dict[str, str] = {
    **LIBRARY_COMMANDS,
    **dict.fromkeys(
        ("demo", "serve", "worker", "migrate", "create-api-key", "revoke-api-key"), "service.commands"
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``taskgrouper``.

    With a known ``command`` only the module that owns it is imported, so a command pays only for its
    own dependencies (torch, OR-Tools, the web stack load on demand); otherwise (``--help``, a typo)
    every command is registered so that argparse can list them.
    """
    parser = argparse.ArgumentParser(
        prog="taskgrouper",
        description="Decide which tasks to train together under an inference-cost budget.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = [COMMANDS[command]] if command in COMMANDS else dict.fromkeys(COMMANDS.values())
    for module in modules:
        importlib.import_module(module).register(sub)
    return parser


def _requested_command(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn :class:`InputError` into a message and exit code 2."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_requested_command(argv)).parse_args(argv)
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
