"""``taskgrouper affinity``: estimate how tasks help each other on a dataset and write the selection
problem ``taskgrouper solve`` reads.

``--method warm_start`` (the default, :data:`DEFAULT_METHOD`) trains the all-task network once and
fine-tunes a copy on each candidate task subset (:func:`grouping.tables.warm_start_table`); it writes
the explicit ``min_loss`` problem of the copies' validation losses (``"normalize": "stl"``) with the
table's metadata and the bootstrap draws of the losses (``metadata.val_draws``, from which
``taskgrouper solve`` reports how far to trust a selection). The affinity methods (``tag``,
``tag_first_order``, ``grad_cosine``) train the surrogate all-task network once, measure inter-task
affinity during training and write the ``max_affinity`` problem of the first method's matrix (plus
every method's matrices and trajectories under ``metadata``).
"""

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
from grouping.tables.warm_start import ALL_SUBSETS_UP_TO, MAX_VAL_DRAWS, WARM_START_METHOD
from grouping.training import ModelConfig, Progress, TrainingConfig

#: every method ``--method`` accepts: the warm-start table and the affinity methods
METHODS = (WARM_START_METHOD, *AFFINITY_METHODS)
#: the method used without ``--method`` (switch back to TAG with ``"tag"``)
DEFAULT_METHOD = WARM_START_METHOD
#: fine-tuning passes over the training split per subset (warm_start)
DEFAULT_FINETUNE_EPOCHS = 0.5
#: bootstrap draws of the validation losses stored with a warm_start problem
DEFAULT_VAL_DRAWS = 100
#: options that only apply to the affinity methods, with their defaults there
AFFINITY_ONLY = {"singletons": "forbid", "every": 10, "lookahead_batch": None, "checkpoint_dir": None}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``affinity`` sub-command."""
    p = subparsers.add_parser(
        "affinity",
        help="estimate how tasks help each other on a dataset and write a selection problem",
        description="warm_start (default): train the all-task network once, fine-tune a copy on each "
        f"task subset (all subsets up to {ALL_SUBSETS_UP_TO} tasks, else single tasks and pairs, plus "
        "the all-task set) and write the explicit problem of their validation losses with bootstrap "
        "draws for trust reports. Affinity methods "
        f"({', '.join(AFFINITY_METHODS)}): train one multi-task network and measure inter-task "
        f"affinity. Built-in datasets: {', '.join(BUILTIN_DATASETS)}.",
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
        choices=METHODS,
        help=f"{WARM_START_METHOD} (the default) or affinity methods (repeat for several; the first "
        "one fills the problem); warm_start cannot be combined with affinity methods in one file",
    )
    p.add_argument(
        "--finetune-epochs",
        type=float,
        default=DEFAULT_FINETUNE_EPOCHS,
        help="warm_start: fine-tuning passes over the training split per subset "
        f"(default {DEFAULT_FINETUNE_EPOCHS})",
    )
    p.add_argument(
        "--half-singletons",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="warm_start: also fine-tune a half-size all-task network on each single task (default on)",
    )
    p.add_argument(
        "--val-draws",
        type=int,
        default=DEFAULT_VAL_DRAWS,
        help=f"warm_start: bootstrap draws of the validation losses stored under metadata.val_draws "
        f"(0 to {MAX_VAL_DRAWS}; default {DEFAULT_VAL_DRAWS}; 0 leaves them out)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="warm_start: processes fine-tuning subsets in parallel (default 1; the table is the same "
        "for any number)",
    )
    p.add_argument("--every", type=int, help="affinity methods: measure affinity every N steps (default 10)")
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
        help="CPU threads for torch (default 1: small surrogate networks run fastest on one; "
        "warm_start always trains on one thread per process)",
    )
    p.add_argument(
        "--singletons",
        choices=SINGLETON_POLICIES,
        help="affinity methods: forbid (default): a task is never served alone (TAG); normalized: "
        "affinities divided by the self-affinity, serving alone scores 0",
    )
    p.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="affinity methods: save a checkpoint each epoch here and resume from it",
    )
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
    """Handler: build the specs, run the method (see the module docstring), write ``--out``."""
    if args.threads < 1:
        raise InputError("--threads", "must be at least 1")
    methods = args.method or [DEFAULT_METHOD]
    if WARM_START_METHOD in methods and len(methods) > 1:
        raise InputError("--method", f"{WARM_START_METHOD} writes its own problem; run the affinity "
                         "methods separately")
    warm = methods == [WARM_START_METHOD]
    for name, default in AFFINITY_ONLY.items():
        value = getattr(args, name)
        if warm and value is not None:
            option = "--" + name.replace("_", "-")
            raise InputError(option, f"applies to the affinity methods, not {WARM_START_METHOD}")
        if value is None:
            setattr(args, name, default)
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
    if warm:
        return _warm_start(args, dataset_spec, dataset.task_names, model, training)
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


def _warm_start(
    args: argparse.Namespace,
    spec: DatasetSpec,
    tasks: list[str],
    model: ModelConfig,
    training: TrainingConfig,
) -> int:
    """Train the warm-start table of ``tasks`` (the default candidates plus the all-task set) and write
    its explicit problem (with draws) to ``--out``."""
    from grouping.tables.warm_start import warm_start_table

    with _progress_bar() as report:
        table = warm_start_table(
            spec,
            model,
            training,
            finetune_epochs=args.finetune_epochs,
            extra_subsets=[tasks],
            half_singletons=args.half_singletons,
            val_draws=args.val_draws,
            workers=args.workers,
            progress=report,
        )
    problem = table.problem_document("val", normalize="stl")
    try:
        args.out.write_text(json.dumps(problem, indent=1) + "\n")
    except OSError as exc:
        raise InputError("--out", f"cannot write {args.out}: {exc.strerror}") from None
    meta = table.metadata
    print(
        f"{WARM_START_METHOD} table for {len(table.tasks)} tasks: {meta['networks_trained']} networks, "
        f"{meta['mtl_runs']['total']:.2f} all-task training runs of compute, {meta['wall_seconds']:.1f}s "
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
