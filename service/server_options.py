"""What every ``taskgrouper`` command against a server shares: the ``--server``, ``--api-key`` and
``--json`` options, the client they make, and how a result is printed.

The server's URL comes from ``--server``, else ``TASKGROUPER_SERVER``, else http://127.0.0.1:8000;
the API key from ``--api-key``, else ``TASKGROUPER_API_KEY`` (prefer the variable: a command line is
visible to other users of the machine). An API error ends the command with exit code 1 and one line
naming the status, the field and the reason (``service.cli`` prints it; no traceback).

Only the client is imported: these commands run on the base install (no torch, OR-Tools or server
stack).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import BaseModel

from grouping.errors import InputError
from service.client import API_KEY_ENV, DEFAULT_SERVER, SERVER_ENV, TaskgrouperClient, default_retry


def server_parent() -> argparse.ArgumentParser:
    """A parent parser (``add_parser(..., parents=[server_parent()])``) adding ``--server``,
    ``--api-key``, ``--timeout``, ``--retries`` and ``--json``."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("server")
    group.add_argument("--server", metavar="URL", default=None,
                       help=f"the API's base URL (default: ${SERVER_ENV}, else {DEFAULT_SERVER})")
    group.add_argument("--api-key", default=None,
                       help=f"API key (default: ${API_KEY_ENV}; prefer the variable: a command line is "
                       "visible to other users)")
    group.add_argument("--timeout", type=float, default=60.0, metavar="S",
                       help="seconds to wait for one answer (default: 60); refused connections, 429 and "
                       "503 are retried with backoff")
    group.add_argument("--retries", type=int, default=5, metavar="N",
                       help="retries of a refused connection or a 429/503 answer (default: 5; 0: none)")
    parent.add_argument("--json", action="store_true", help="print the result as JSON")
    return parent


def connect(args: argparse.Namespace) -> TaskgrouperClient:
    """The client of the server the options name."""
    if args.retries < 0:
        raise InputError("--retries", f"must be a whole number >= 0, got {args.retries}")
    retry = default_retry(args.retries) if args.retries else None
    return TaskgrouperClient(args.server, api_key=args.api_key, timeout=args.timeout, retry=retry)


def to_jsonable(value: Any) -> Any:
    """A result (pydantic models, lists of them, plain data) as JSON-ready data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [to_jsonable(item) for item in value]
    return value


def emit(args: argparse.Namespace, result: Any, text: str) -> None:
    """Print ``result`` as JSON with ``--json``, else ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(to_jsonable(result), indent=2))
    else:
        print(text)
    sys.stdout.flush()
