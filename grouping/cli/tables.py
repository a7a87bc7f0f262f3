"""``taskgrouper tables``: train a network table (exhaustive, pairwise or esa) and write the explicit
problem form that ``taskgrouper solve`` reads.

    taskgrouper tables --dataset synthetic --tasks c0_t0,c0_t1,c1_t0 --method exhaustive --out table.json

``--dataset`` is a built-in dataset name or a DatasetSpec JSON file (``{"source", "features", "tasks", …}``).
Selection should run on validation losses (``--split val``, the default) and be reported on test losses
(``--split test``); ``--save-table`` keeps both, with every network's epochs, cost and time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grouping.data import BUILTIN_DATASETS, DatasetSpec
from grouping.data.spec import validated
from grouping.errors import InputError
from grouping.tables import TABLE_METHODS, build_table
from grouping.training import ModelConfig, TrainingConfig


def dataset_spec(dataset: str, tasks: str | None, options: list[str]) -> DatasetSpec:
    """A built-in name (with ``--tasks`` picking a subset and ``--option`` its options) or a spec file."""
    if dataset in BUILTIN_DATASETS:
        opts = dict(_option(text) for text in options)
        spec: DatasetSpec = validated(DatasetSpec, {"source": dataset, "options": opts}, "dataset")
        if tasks is None:
            return spec
        known = {t.name: t for t in BUILTIN_DATASETS[dataset].build(spec.options).tasks}
        names = [t.strip() for t in tasks.split(",") if t.strip()]
        unknown = [t for t in names if t not in known]
        if unknown:
            raise InputError("tasks", f"{dataset!r} has no task {unknown[0]!r} (tasks: {', '.join(known)})")
        return spec.model_copy(update={"tasks": [known[t] for t in names]})
    path = Path(dataset)
    if not path.is_file():
        builtins = ", ".join(BUILTIN_DATASETS)
        raise InputError("dataset", f"{dataset!r} is neither a built-in dataset ({builtins}) "
                         "nor a DatasetSpec JSON file")
    if tasks is not None or options:
        raise InputError("tasks", "--tasks and --option apply to built-in datasets; "
                         "list the tasks and options in the spec file")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError("dataset", f"cannot read {dataset} as JSON: {exc}") from None
    return validated(DatasetSpec, data, "dataset")


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InputError("option", f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _tables(args: argparse.Namespace) -> int:
    spec = dataset_spec(args.dataset, args.tasks, args.option or [])
    builtin = BUILTIN_DATASETS.get(spec.source)
    epochs = args.epochs or (builtin.default_epochs if builtin is not None else 20)
    training = validated(TrainingConfig, {"epochs": epochs, "seed": args.seed, "patience": args.patience},
                         "training")

    def report(done: int, total: int, net: Any) -> None:
        print(f"[{done}/{total}] {'+'.join(net.job.tasks)} ({net.job.size}): {net.epochs_run} epochs, "
              f"{net.seconds:.1f}s", file=sys.stderr)

    table = build_table(spec, args.method, ModelConfig(), training, workers=args.workers,
                        esa_fraction=args.esa_fraction, on_done=None if args.quiet else report)
    text = json.dumps(table.to_problem(args.split, args.cost).to_dict(), indent=2)
    try:
        if args.out == "-":
            print(text)
        else:
            Path(args.out).write_text(text + "\n")
        if args.save_table:
            Path(args.save_table).write_text(json.dumps(table.to_dict(), indent=1) + "\n")
    except OSError as exc:
        raise InputError("out", f"cannot write: {exc.strerror or exc}") from None
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tables``."""
    p = subparsers.add_parser(
        "tables", help="train candidate networks (exhaustive / pairwise+HOA / ESA) into a selection problem",
        description="Train a network table (Standley et al. 2020) and write the explicit problem form "
        "(`taskgrouper solve` reads it). Networks train in parallel, one process per core.")
    p.add_argument("--dataset", required=True, help="built-in dataset name or DatasetSpec JSON file")
    p.add_argument("--tasks", help="comma-separated subset of a built-in dataset's tasks")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="built-in dataset option (repeatable)")
    p.add_argument("--method", choices=TABLE_METHODS, default="exhaustive", help="default: exhaustive")
    p.add_argument("--out", required=True, help="problem JSON to write ('-' prints it)")
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="which losses the problem holds (default: val; select on val, report on test)")
    p.add_argument("--cost", choices=("standley", "measured"), default="standley",
                   help="network costs: Standley's 1.0/0.5 (default) or the measured multiply-add ratio")
    p.add_argument("--epochs", type=int, help="training epochs (default: the dataset's, else 20)")
    p.add_argument("--patience", type=int, default=5, help="early-stopping patience in epochs (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of every network (default: 0)")
    p.add_argument("--esa-fraction", type=float, default=0.2,
                   help="ESA: fraction of the epochs (default: 0.2)")
    p.add_argument("--workers", type=int, help="parallel training processes (default: the usable cores)")
    p.add_argument("--save-table", metavar="PATH",
                   help="also write every network's val/test losses and timings")
    p.add_argument("--quiet", action="store_true", help="no per-network progress on stderr")
    p.set_defaults(handler=_tables)
