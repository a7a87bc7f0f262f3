"""``taskgrouper affinity``: train the surrogate all-task network on a dataset, measure task affinities,
and write the selection problem ``taskgrouper solve`` reads (plus every method's matrices and metadata)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

import torch

from grouping.affinity import AFFINITY_METHODS, compute_affinity
from grouping.affinity.run import SINGLETON_POLICIES
from grouping.data import BUILTIN_DATASETS, DatasetSpec, SplitSpec, TaskSpec, load_dataset
from grouping.data.spec import validated
from grouping.errors import InputError
from grouping.training import ModelConfig, Progress, TrainingConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``affinity`` sub-command."""
    p = subparsers.add_parser(
        "affinity",
        help="measure task affinities on a dataset and write a selection problem",
        description="Train one multi-task network on the dataset and measure inter-task affinity "
        f"(methods: {', '.join(AFFINITY_METHODS)}). Built-in datasets: {', '.join(BUILTIN_DATASETS)}.",
    )
    p.add_argument("--dataset", required=True, help="built-in name or a local .parquet/.csv/.npz file")
    p.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="COL:TYPE[:LOSS]",
        help="a target column and its type (binary|multiclass|regression); repeat per task",
    )
    p.add_argument(
        "--feature",
        action="append",
        default=None,
        metavar="COL",
        help="an input column (repeat; default: every non-target column)",
    )
    p.add_argument("--split-column", help="column holding train/val/test (default: random 70/15/15)")
    p.add_argument(
        "--method",
        action="append",
        default=None,
        choices=AFFINITY_METHODS,
        help="affinity method (repeat for several; the first one fills the problem; default tag)",
    )
    p.add_argument("--every", type=int, default=10, help="measure affinity every N steps (default 10)")
    p.add_argument("--epochs", type=int, help="training epochs (default: the dataset's, else 20)")
    p.add_argument("--seed", type=int, default=0, help="seed for the split, initialisation and batches")
    p.add_argument("--optimizer", choices=["sgd", "momentum", "adam"], default="sgd")
    p.add_argument("--lr", type=float, help="learning rate (default 0.03)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=float, default=1.0, help="network size as a fraction of full size")
    p.add_argument("--backbone", choices=["auto", "mlp", "cnn"], default="auto",
                   help="shared backbone (default: cnn for image data, mlp for tables)")
    p.add_argument("--hidden-units", type=int, help="full-size MLP hidden layer width (default 128)")
    p.add_argument("--hidden-layers", type=int, help="MLP hidden layers (default 2)")
    p.add_argument("--channels", type=int, help="full-size CNN first-block channels (default 16)")
    p.add_argument("--representation", type=int, help="size of the shared output the heads read (default 64)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument(
        "--lookahead-batch",
        choices=get_args(TrainingConfig.model_fields["lookahead_batch"].annotation),
        help="batch the tag/tag_first_order lookahead losses are measured on: train (the batch that made "
        "the step, TAG eq. 1) or val (a held-out validation batch; training is unchanged) "
        f"(default {TrainingConfig.model_fields['lookahead_batch'].default})",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: small surrogate networks run fastest on one)",
    )
    p.add_argument(
        "--singletons",
        choices=SINGLETON_POLICIES,
        default="forbid",
        help="forbid: a task is never served alone (TAG); normalized: affinities divided by the "
        "self-affinity, serving alone scores 0",
    )
    p.add_argument("--checkpoint-dir", type=Path, help="save a checkpoint each epoch here and resume from it")
    p.add_argument("--out", type=Path, required=True, help="where to write the problem JSON")
    p.set_defaults(handler=run)


def parse_task(text: str) -> TaskSpec:
    """``COL:TYPE`` or ``COL:TYPE:LOSS`` -> ``TaskSpec``."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise InputError("--task", f"{text!r} is not COL:TYPE or COL:TYPE:LOSS")
    data: dict[str, Any] = {"name": parts[0], "type": parts[1]}
    if len(parts) == 3:
        data["loss"] = parts[2]
    return validated(TaskSpec, data, f"--task {text}")


def run(args: argparse.Namespace) -> int:
    """Handler: build the specs, run, write ``--out``."""
    if args.threads < 1:
        raise InputError("--threads", "must be at least 1")
    torch.set_num_threads(args.threads)
    tasks = [parse_task(text) for text in args.task] or None
    dataset_spec = validated(
        DatasetSpec,
        {
            "source": args.dataset,
            "features": args.feature,
            "tasks": tasks,
            "split": SplitSpec(column=args.split_column, seed=args.seed),
        },
        "dataset",
    )
    dataset = load_dataset(dataset_spec)
    training_args: dict[str, Any] = {
        "optimizer": args.optimizer,
        "every": args.every,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "device": args.device,
        "epochs": args.epochs or dataset.default_epochs or TrainingConfig().epochs,
    }
    if args.lr is not None:
        training_args["lr"] = args.lr
    if args.lookahead_batch is not None:
        training_args["lookahead_batch"] = args.lookahead_batch
    training = validated(TrainingConfig, training_args, "training")
    sizes = ("hidden_units", "hidden_layers", "channels", "representation")
    model_args = {name: getattr(args, name) for name in sizes if getattr(args, name) is not None}
    model = validated(ModelConfig, {"width": args.width, "backbone": args.backbone, **model_args}, "model")
    methods = args.method or ["tag"]
    with _progress_bar() as report:
        result = compute_affinity(
            dataset, methods, model, training, progress=report, checkpoint_dir=args.checkpoint_dir
        )
    problem = result.to_problem_dict(methods[0], singletons=args.singletons)
    stored = result.to_dict()
    problem["metadata"]["matrices"] = stored["matrices"]
    problem["metadata"]["trajectories"] = stored["trajectories"]
    try:
        args.out.write_text(json.dumps(problem, indent=1) + "\n")
    except OSError as exc:
        raise InputError("--out", f"cannot write {args.out}: {exc.strerror}") from None
    meta = result.metadata
    print(
        f"affinity ({', '.join(methods)}) for {len(result.tasks)} tasks: {meta['epochs']} epochs, "
        f"{meta['affinity_steps']} measured steps, {meta['wall_seconds']:.1f}s on {meta['device']} "
        f"-> {args.out}",
        file=sys.stderr,
    )
    return 0


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[Progress], None] | None]:
    """A tqdm bar on stderr when it is a terminal; otherwise no reporting."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=1.0, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}") as bar:

        def report(p: Progress) -> None:
            bar.n = round(p.fraction, 4)
            bar.set_postfix_str(f"epoch {p.epoch} step {p.step}/{p.total_steps}")

        yield report
