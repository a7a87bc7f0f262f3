"""Library commands of the ``taskgrouper`` console script, and the argument parsing they share.

Each module here exposes ``register(subparsers)``, which adds its sub-command(s) with
``set_defaults(handler=...)``; a handler takes the parsed ``argparse.Namespace`` and returns
the process exit code. ``service.cli`` assembles them with the service commands.

Shared parsing, so that every command refuses bad arguments the same way (a message naming the
option, exit code 2, before any work):

* ``type=`` callables for argparse: :func:`positive_int`, :func:`non_negative_int`,
  :func:`seed_int`, :func:`finite_positive_float`, :func:`unit_fraction`, :func:`output_file`,
  :func:`output_file_or_stdout`. They raise ``argparse.ArgumentTypeError``, which argparse reports as
  ``argument --epochs: must be a whole number >= 1, got '0'`` with exit code 2.
* the dataset arguments: :func:`add_dataset_arguments` adds ``--dataset``, ``--task``/``--tasks``,
  ``--feature``/``--features``, ``--split-column`` and ``--option``; :func:`dataset_spec_from_args`
  turns them into a validated :class:`grouping.data.DatasetSpec` (``InputError`` naming the option).

This module is imported by every ``taskgrouper`` invocation: it imports nothing heavy at load time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grouping.data import DatasetSpec, TaskSpec

#: library sub-command -> the module of this package whose ``register`` adds it (help order)
COMMANDS: dict[str, str] = {
    "solve": f"{__name__}.solve",
    "import-standley": f"{__name__}.solve",
    "affinity": f"{__name__}.affinity",
    "tables": f"{__name__}.tables",
    "evaluate-scores": f"{__name__}.evaluate",
}

#: what ``--task`` / ``--tasks`` items look like
TASK_FORMAT = "COL:TYPE[:LOSS] (TYPE: binary, multiclass or regression)"


# --- argparse types -------------------------------------------------------------------------------


def _integer(text: str, least: int) -> int:
    try:
        value = int(text.strip())
    except (ValueError, AttributeError):
        raise argparse.ArgumentTypeError(f"must be a whole number >= {least}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be a whole number >= {least}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """``type=`` for counts that must be at least 1 (``--epochs``, ``--workers``): ``0`` is refused,
    never read as "use the default"."""
    return _integer(text, 1)


def non_negative_int(text: str) -> int:
    """``type=`` for counts that may be 0 (``--patience``)."""
    return _integer(text, 0)


#: largest seed the random generators (numpy, torch) take from the command line
MAX_SEED = 2**32 - 1


def seed_int(text: str) -> int:
    """``type=`` for ``--seed``: a whole number in ``[0, 2**32 - 1]``."""
    value = _integer(text, 0)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be a whole number in [0, {MAX_SEED}], got {text!r}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def finite_positive_float(text: str) -> float:
    """``type=`` for a finite number > 0 (``--lr``): ``nan``, ``inf``, 0 and negatives are refused with
    "must be a finite positive number"."""
    try:
        value = _finite(text)
    except argparse.ArgumentTypeError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a finite positive number, got {text!r}")
    return value


def unit_fraction(text: str) -> float:
    """``type=`` for a fraction in (0, 1] (``--esa-fraction``)."""
    try:
        value = _finite(text)
    except argparse.ArgumentTypeError:
        value = math.nan
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}")
    return value


def output_file(text: str) -> Path:
    """``type=`` for a file the command will write: its folder must exist and be writable and the path
    must not be a directory, so that a bad ``--out`` fails before any work rather than after it."""
    path = Path(text).expanduser()
    folder = path.parent
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a file path, got ''")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file path")
    if not folder.is_dir():
        what = "is not a directory" if folder.exists() else "does not exist"
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: the folder {str(folder)!r} {what}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: the folder {str(folder)!r} is not writable")
    return path


def output_file_or_stdout(text: str) -> Path | str:
    """:func:`output_file`, or ``"-"`` (standard output) as is."""
    return "-" if text == "-" else output_file(text)


# --- dataset arguments ----------------------------------------------------------------------------


def add_dataset_arguments(parser: argparse.ArgumentParser, *, spec_files: bool = False) -> None:
    """Add the dataset options every training command shares. ``spec_files``: ``--dataset`` may also
    be a DatasetSpec JSON file (``{"source", "features", "tasks", "split", "options"}``)."""
    also = " or a DatasetSpec .json file" if spec_files else ""
    parser.add_argument("--dataset", required=True,
                        help=f"built-in dataset name or a local .parquet/.csv/.npz file{also}")
    parser.add_argument("--task", action="append", default=[], metavar="COL:TYPE[:LOSS]",
                        help="a target column and its type (binary|multiclass|regression); repeat per "
                        "task. For a built-in dataset a bare task name picks that task")
    parser.add_argument("--tasks", metavar="T1,T2,...",
                        help="the same as --task, comma-separated (e.g. a,b for a built-in dataset's "
                        "tasks, or price:regression,churn:binary for a file)")
    parser.add_argument("--feature", action="append", default=[], metavar="COL",
                        help="an input column (repeat; default: every column that is not a target or the "
                        "split column; text columns are one-hot encoded)")
    parser.add_argument("--features", metavar="C1,C2,...", help="the same as --feature, comma-separated")
    parser.add_argument("--split-column", metavar="COL",
                        help="column holding train/val/test (default: random 70/15/15)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="built-in dataset option, e.g. n_samples=2000 (repeatable; VALUE is JSON "
                        "or text)")


def _items(repeated: list[str] | None, joined: str | None) -> list[str]:
    items = [text.strip() for text in repeated or []]
    items += [part.strip() for part in (joined or "").split(",")]
    return [item for item in items if item]


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(key, value)``; VALUE is read as JSON when it parses (``2000``, ``true``,
    ``[1, 2]``), else kept as text."""
    from grouping.errors import InputError

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise InputError("--option", f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def parse_task(text: str) -> TaskSpec:
    """``COL:TYPE`` or ``COL:TYPE:LOSS`` -> ``TaskSpec`` (``InputError`` on ``--task`` otherwise)."""
    from grouping.data.spec import TaskSpec, validated
    from grouping.errors import InputError

    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise InputError("--task", f"{text!r} is not {TASK_FORMAT}")
    data: dict[str, Any] = {"name": parts[0], "type": parts[1]}
    if len(parts) == 3:
        data["loss"] = parts[2]
    return validated(TaskSpec, data, f"--task {text}")


def dataset_spec_from_args(args: argparse.Namespace, *, split_seed: int = 0,
                           spec_files: bool = False) -> DatasetSpec:
    """The :class:`DatasetSpec` of the options :func:`add_dataset_arguments` added.

    * a built-in ``--dataset``: task items that are bare names pick the built-in's tasks (in the order
      given), ``COL:TYPE[:LOSS]`` items define tasks on its columns; ``--option`` sets its options;
    * a file: every task item is ``COL:TYPE[:LOSS]`` and at least one is needed;
    * with ``spec_files``, a ``.json`` ``--dataset`` is a DatasetSpec file, which then holds the tasks,
      features, split and options itself.

    The split is random with ``split_seed`` unless ``--split-column`` names a column. Raises
    ``InputError`` naming the option and the cause (the file itself is read later, by
    :func:`grouping.data.load_dataset`, whose errors name the column)."""
    from grouping.data import BUILTIN_DATASETS
    from grouping.data.spec import DatasetSpec, SplitSpec, validated
    from grouping.errors import InputError

    source = args.dataset
    items = _items(args.task, args.tasks)
    features = _items(args.feature, args.features) or None
    options = dict(parse_option(text) for text in args.option or [])
    if spec_files and source not in BUILTIN_DATASETS and Path(source).suffix.lower() == ".json":
        given = [name for name, used in (("--task/--tasks", items), ("--feature/--features", features),
                                         ("--split-column", args.split_column), ("--option", options))
                 if used]
        if given:
            raise InputError(given[0], "does not apply to a DatasetSpec file: list the tasks, features, "
                             "split and options in the file")
        return _spec_file(source)
    builtin = BUILTIN_DATASETS.get(source)
    if builtin is None:
        _check_file(source, spec_files)
    if builtin is None and options:
        raise InputError("--option", f"options apply to built-in datasets ({', '.join(BUILTIN_DATASETS)})")
    tasks: list[TaskSpec] | None = None
    if items:
        known = {t.name: t for t in builtin.build(options).tasks} if builtin is not None else {}
        tasks = []
        for item in items:
            if ":" in item:
                tasks.append(parse_task(item))
            elif builtin is None:
                raise InputError("--task", f"{item!r} has no type; for a file give {TASK_FORMAT}")
            elif item not in known:
                raise InputError("--tasks", f"{source!r} has no task {item!r} (tasks: {', '.join(known)})")
            else:
                tasks.append(known[item])
    elif builtin is None:
        raise InputError("--task", f"a file dataset needs its tasks: give --task {TASK_FORMAT} per task "
                         "(or --tasks with them comma-separated)")
    split = SplitSpec(column=args.split_column, seed=split_seed)
    return validated(DatasetSpec, {"source": source, "features": features, "tasks": tasks,
                                   "split": split, "options": options}, "dataset")


def _check_file(source: str, spec_files: bool) -> None:
    """``InputError`` on ``--dataset`` unless ``source`` is a readable data file's location."""
    from grouping.data import BUILTIN_DATASETS
    from grouping.data.location import resolve_local
    from grouping.errors import InputError

    try:
        resolve_local(source)
    except InputError as exc:
        also = ""
        if "neither" in exc.reason:
            also = f" (built-in datasets: {', '.join(BUILTIN_DATASETS)}" + \
                ("; a DatasetSpec .json file also works)" if spec_files else ")")
        raise InputError("--dataset", exc.reason + also) from None


def _spec_file(source: str) -> DatasetSpec:
    from grouping.data.spec import DatasetSpec, validated
    from grouping.errors import InputError

    path = Path(source).expanduser()
    if path.is_dir():
        raise InputError("--dataset", f"{source!r} is a directory, not a DatasetSpec .json file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("--dataset", f"DatasetSpec file {source!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError("--dataset", f"cannot read {source!r} as a DatasetSpec JSON file: {exc}") from None
    return validated(DatasetSpec, data, "dataset")
