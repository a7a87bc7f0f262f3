"""The ``taskgrouper`` console script: library commands plus the service commands.

Exit codes: 0 success; 2 bad input (the option or field named) or a command whose packages are not
installed (the extra to install named); 1 an error answered by a server (``taskgrouper jobs ...``:
the status, field and reason printed) or a server that could not be reached; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from grouping.cli import COMMANDS as LIBRARY_COMMANDS
from grouping.errors import InputError

#: every sub-command -> the module whose ``register(subparsers)`` adds it (help order)
COMMANDS: dict[str, str] = {
    **LIBRARY_COMMANDS,
    **dict.fromkeys(
        ("demo", "serve", "worker", "migrate", "create-api-key", "revoke-api-key"), "service.commands"
    ),
    "jobs": "service.jobs_commands",
    "upload": "service.upload_command",
    "tables": "service.tables_command",  # the library's, fanned out over the workers with a broker
}
#: the packages of this project: a missing module outside them is a missing optional dependency
_OWN_PACKAGES = frozenset({"grouping", "service", "worker"})
#: what to install for a command whose dependencies are missing
INSTALL_HINT = "pip install 'taskgrouper[all]'"


def package_version() -> str:
    """The installed distribution's version (``taskgrouper --version``)."""
    try:
        return version("taskgrouper")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class MissingExtra(InputError):
    """A command needs a package of an optional extra that is not installed."""

    def __init__(self, command: str, error: ModuleNotFoundError) -> None:
        super().__init__(
            command, f"needs the package {error.name!r}, which is not installed: {INSTALL_HINT}"
        )


def _missing_dependency(error: ModuleNotFoundError) -> bool:
    return (error.name or "").split(".")[0] not in _OWN_PACKAGES


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``taskgrouper``.

    With a known ``command`` only the module that owns it is imported, so a command pays only for its
    own dependencies (torch, OR-Tools, the web stack load on demand); otherwise (``--help``, a typo)
    every command is registered so that argparse can list them — a command whose optional
    dependencies are not installed (the base install has only the client) is listed as such and
    running it says which extra to install.
    """
    parser = argparse.ArgumentParser(
        prog="taskgrouper",
        description="Decide which tasks to train together under an inference-cost budget.",
    )
    parser.add_argument("--version", action="version", version=f"taskgrouper {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = [COMMANDS[command]] if command in COMMANDS else dict.fromkeys(COMMANDS.values())
    for module in modules:
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:
            if not _missing_dependency(exc):
                raise
            for name in (name for name, owner in COMMANDS.items() if owner == module):
                unavailable = sub.add_parser(name, help=f"(not installed: {INSTALL_HINT})", add_help=False)
                unavailable.add_argument("rest", nargs=argparse.REMAINDER)
                unavailable.set_defaults(handler=_unavailable(name, exc))
    return parser


def _unavailable(command: str, error: ModuleNotFoundError) -> object:
    def handler(args: argparse.Namespace) -> int:
        raise MissingExtra(command, error)

    return handler


def _requested_command(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _server_error(exc: Exception) -> str | None:
    """The one-line message of an error answered by (or reaching) a server, else ``None``."""
    client = sys.modules.get("service.client")
    if client is None:
        return None
    if isinstance(exc, client.ApiError):
        field = f"field {exc.field}: " if exc.field else ""
        return f"HTTP {exc.status}: {field}{exc.reason}"
    if isinstance(exc, client.ServerUnreachable | client.JobFailed):
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn :class:`InputError` into a message and exit code 2 (a
    server's error into one with exit code 1)."""
    argv = sys.argv[1:] if argv is None else argv
    command = _requested_command(argv)
    if command is None and "--version" in argv:  # without loading every command's module
        print(f"taskgrouper {package_version()}")
        return 0
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except InputError as exc:
        print(f"taskgrouper {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if not _missing_dependency(exc):
            raise
        print(f"taskgrouper {args.command}: error: {MissingExtra(args.command, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"taskgrouper {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        message = _server_error(exc)
        if message is None:
            raise
        print(f"taskgrouper {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
