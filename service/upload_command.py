"""``taskgrouper upload RUN.json``: store an affinity run measured elsewhere on a server
(``POST /affinity-runs``) and print its id, which ``taskgrouper jobs groupings ID`` (or ``GET
/groupings?job_id=ID``) solves like a job's.

    taskgrouper upload RUN.json --name resnet-mtl --metadata model=resnet18 --server http://host:8000

``RUN.json`` is ``AffinityRun.to_dict()`` (``AffinityTracker.result()`` in the user's training) or the
problem document ``taskgrouper affinity --out`` writes. Server options: :mod:`service.server_options`.
A file that cannot be read or is not JSON exits 2 naming it; the server's refusal (422 naming the
field and the reason) exits 1 (``service.cli``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grouping.errors import InputError
from service.server_options import connect, emit, server_parent


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``upload``."""
    upload = subparsers.add_parser(
        "upload",
        parents=[server_parent()],
        help="store an affinity run measured in your own training on a server (prints its id, for "
        "`taskgrouper jobs groupings`)",
    )
    upload.add_argument("run", type=Path, metavar="RUN.json",
                        help="AffinityRun.to_dict() as JSON, or what `taskgrouper affinity --out` writes")
    upload.add_argument("--name", help="the run's name (default: the file's name without .json)")
    upload.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                        help="added to the run's metadata (repeat), e.g. model=resnet18")
    upload.set_defaults(handler=_upload)


def _upload(args: argparse.Namespace) -> int:
    try:
        document = json.loads(args.run.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("RUN.json", f"cannot read {args.run}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError("RUN.json", f"{args.run} is not JSON: {exc}") from None
    metadata = {}
    for item in args.metadata:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError("--metadata", f"expected KEY=VALUE, got {item!r}")
        metadata[key] = value
    with connect(args) as client:
        try:
            run = client.upload_affinity(document, name=args.name or args.run.stem, metadata=metadata)
        except ValueError as exc:
            raise InputError("RUN.json", str(exc)) from None
    emit(args, run, f"{run.id}  {run.name}: {len(run.tasks)} tasks, methods {', '.join(run.methods)}, "
         f"{run.epochs} epochs -> {run.links['groupings']}")
    return 0
