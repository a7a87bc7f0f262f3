"""``taskgrouper tables``: train a network table (exhaustive, pairwise or esa) and write the explicit
problem form that ``taskgrouper solve`` reads.

    taskgrouper tables --dataset synthetic --tasks c0_t0,c0_t1,c1_t0 --method exhaustive --out table.json
    taskgrouper tables --dataset data.csv --tasks churn:binary,spend:regression --features age,plan \
        --out table.json

The dataset options are those of ``taskgrouper affinity`` (:func:`grouping.cli.add_dataset_arguments`:
a built-in name or a .parquet/.csv/.npz file, ``--task``/``--tasks``, ``--feature``/``--features``,
``--split-column``, ``--option``); ``--dataset`` may also be a DatasetSpec JSON file
(``{"source", "features", "tasks", …}``). Bad arguments fail before any training with a message naming
the option (exit code 2). While networks train, one line per finished network goes to stderr, and a
summary line when the table is written (``--quiet``: neither).

Selection should run on validation losses (``--split val``, the default) and be reported on test losses
(``--split test``); ``--save-table`` keeps both, with every network's epochs, cost and time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grouping.cli import (
    add_dataset_arguments,
    dataset_spec_from_args,
    non_negative_int,
    output_file,
    output_file_or_stdout,
    positive_int,
    seed_int,
    unit_fraction,
)
from grouping.data import BUILTIN_DATASETS, DatasetSpec
from grouping.data.spec import validated
from grouping.errors import InputError
from grouping.tables import TABLE_METHODS, NetworkTable, build_table, default_workers
from grouping.training import ModelConfig, TrainingConfig


def dataset_spec(args: argparse.Namespace) -> DatasetSpec:
    """The dataset of ``args`` (:func:`grouping.cli.dataset_spec_from_args`, DatasetSpec files allowed).
    Every network's split is the same random one (seed 0) unless ``--split-column`` names one."""
    return dataset_spec_from_args(args, split_seed=0, spec_files=True)


class _Report:
    """Progress on stderr: one line per finished network (unless ``quiet``) and a closing summary."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.monotonic()

    def network(self, done: int, total: int, net: Any) -> None:
        if not self.quiet:
            elapsed = time.monotonic() - self.started
            print(f"[{done}/{total}] {'+'.join(net.job.tasks)} ({net.job.size}): {net.epochs_run} epochs, "
                  f"{net.seconds:.1f}s; {elapsed:.0f}s elapsed", file=sys.stderr, flush=True)

    def summary(self, method: str, networks: int, tasks: int, out: Path | str, saved: Path | None) -> None:
        if self.quiet:
            return
        where = "standard output" if out == "-" else str(out)
        also = f" and {saved}" if saved is not None else ""
        print(f"tables ({method}): {networks} networks for {tasks} tasks trained in "
              f"{time.monotonic() - self.started:.1f}s -> {where}{also}", file=sys.stderr, flush=True)


def run_tables(args: argparse.Namespace, build: Callable[..., NetworkTable] | None = None) -> int:
    """The command: ``build`` (:func:`grouping.tables.build_table`'s signature; default that function,
    looked up when the command runs) trains the table — in a local process pool, or
    (``service.tables_command``) on the workers of a study."""
    spec = dataset_spec(args)
    builtin = BUILTIN_DATASETS.get(spec.source)
    epochs = args.epochs
    if epochs is None:
        epochs = builtin.default_epochs if builtin is not None else TrainingConfig().epochs
    training = validated(TrainingConfig, {"epochs": epochs, "seed": args.seed, "patience": args.patience},
                         "training")
    report = _Report(args.quiet)
    if not args.quiet:
        workers = args.workers or default_workers()
        print(f"tables ({args.method}): training the networks on {spec.source} in up to {workers} "
              f"process{'es' if workers != 1 else ''}", file=sys.stderr, flush=True)
    table = (build or build_table)(spec, args.method, ModelConfig(), training, workers=args.workers,
                  esa_fraction=args.esa_fraction, on_done=report.network)
    text = json.dumps(table.to_problem(args.split, args.cost).to_dict(), indent=2)
    try:
        if args.out == "-":
            print(text)
        else:
            Path(args.out).write_text(text + "\n")
        if args.save_table:
            Path(args.save_table).write_text(json.dumps(table.to_dict(), indent=1) + "\n")
    except OSError as exc:
        raise InputError("--out", f"cannot write: {exc.strerror or exc}") from None
    report.summary(args.method, len(table.rows), len(table.tasks), args.out, args.save_table)
    if args.json and args.out != "-":
        print(json.dumps({"out": str(args.out), "method": args.method, "networks": len(table.rows),
                          "tasks": list(table.tasks), "save_table": args.save_table and str(args.save_table)},
                         indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tables``."""
    p = subparsers.add_parser(
        "tables", help="train candidate networks (exhaustive / pairwise+HOA / ESA) into a selection problem",
        description="Train a network table (Standley et al. 2020) and write the explicit problem form "
        "(`taskgrouper solve` reads it). Networks train in parallel, one process per core.")
    add_dataset_arguments(p, spec_files=True)
    p.add_argument("--method", choices=TABLE_METHODS, default="exhaustive", help="default: exhaustive")
    p.add_argument("--out", required=True, type=output_file_or_stdout,
                   help="problem JSON to write ('-' prints it); its folder must exist")
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="which losses the problem holds (default: val; select on val, report on test)")
    p.add_argument("--cost", choices=("standley", "measured"), default="standley",
                   help="network costs: Standley's 1.0/0.5 (default) or the measured multiply-add ratio")
    p.add_argument("--epochs", type=positive_int,
                   help="training epochs, >= 1 (default: the dataset's, else 20)")
    p.add_argument("--patience", type=non_negative_int, default=5,
                   help="early-stopping patience in epochs (default: 5; 0 disables early stopping)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of every network (default: 0)")
    p.add_argument("--esa-fraction", type=unit_fraction, default=0.2,
                   help="ESA: fraction of the epochs, in (0, 1] (default: 0.2)")
    p.add_argument("--workers", type=positive_int,
                   help="parallel training processes (default: the usable cores)")
    p.add_argument("--save-table", metavar="PATH", type=output_file,
                   help="also write every network's val/test losses and timings")
    p.add_argument("--json", action="store_true",
                   help="print a summary as JSON on standard output (with --out -, the problem itself)")
    p.add_argument("--quiet", action="store_true",
                   help="nothing on stderr but errors (default: a line per finished network and a summary)")
    p.set_defaults(handler=run_tables)
