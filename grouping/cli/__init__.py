"""Library commands of the ``taskgrouper`` console script.

Each module here exposes ``register(subparsers)``, which adds its sub-command(s) with
``set_defaults(handler=...)``; a handler takes the parsed ``argparse.Namespace`` and returns
the process exit code. ``service.cli`` assembles them with the service commands.
"""

from __future__ import annotations

import argparse
import importlib

#: modules of this package that contribute sub-commands, in help order
COMMAND_MODULES: tuple[str, ...] = ()


def register_all(subparsers: argparse._SubParsersAction) -> None:
    """Add every library sub-command to ``subparsers``."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
