"""Library commands of the ``taskgrouper`` console script.

Each module here exposes ``register(subparsers)``, which adds its sub-command(s) with
``set_defaults(handler=...)``; a handler takes the parsed ``argparse.Namespace`` and returns
the process exit code. ``service.cli`` assembles them with the service commands.
"""

from __future__ import annotations

#: library sub-command -> the module of this package whose ``register`` adds it (help order)
COMMANDS: dict[str, str] = {
    "solve": f"{__name__}.solve",
    "import-standley": f"{__name__}.solve",
    "affinity": f"{__name__}.affinity",
    "tables": f"{__name__}.tables",
    "evaluate-scores": f"{__name__}.evaluate",
}
