"""``taskgrouper affinity``: estimate how tasks help each other on a dataset and write the selection
problem ``taskgrouper solve`` reads.

``--method tag_first_order`` (the default, :data:`DEFAULT_METHOD`) and the other affinity methods
(``tag``, ``grad_cosine``) train the surrogate all-task network once, measure inter-task affinity
during training and write the ``max_affinity`` problem of the first method's matrix (plus every
method's matrices and trajectories under ``metadata``). That problem allows half-size single-task
networks (``"half_singletons": true``: cost 0.5, scoring 0) unless ``--no-half-singletons``: in the
grouping-quality benchmark (``bench/results/grouping_quality.md``) ``tag_first_order`` with half-size
singletons had the lowest regret of the methods costing at most three all-task training runs.

``--method warm_start`` trains the all-task network once and fine-tunes a copy on each candidate task
subset (:func:`grouping.tables.warm_start_table`); it writes the explicit ``min_loss`` problem of the
copies' validation losses (``"normalize": "stl"``) with the table's metadata and the bootstrap draws of
the losses (``metadata.val_draws``, from which ``taskgrouper solve`` reports how far to trust a
selection). There ``--half-singletons`` (default on) fine-tunes half-size networks on each single task.

Arguments are parsed with the shared types and dataset options of :mod:`grouping.cli`: a bad value
(``--epochs 0``, ``--lr nan``, an ``--out`` in a missing folder) fails with a message naming the option
and exit code 2 before any data is read or any network trained.
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
from grouping.cli import (
    add_dataset_arguments,
    dataset_spec_from_args,
    finite_positive_float,
    non_negative_int,
    output_file,
    positive_int,
    seed_int,
)
from grouping.data import BUILTIN_DATASETS, DatasetSpec, load_dataset
from grouping.data.spec import validated
from grouping.errors import InputError
from grouping.tables.warm_start import ALL_SUBSETS_UP_TO, MAX_VAL_DRAWS, WARM_START_METHOD
from grouping.training import ModelConfig, Progress, TrainingConfig

#: every method ``--method`` accepts: the affinity methods and the warm-start table
METHODS = (*AFFINITY_METHODS, WARM_START_METHOD)
#: the method used without ``--method``: TAG's first-order affinity, its problem allowing half-size
#: singletons (the lowest regret at the cost of one all-task run in bench/results/grouping_quality.md)
DEFAULT_METHOD = "tag_first_order"
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
        description=f"Affinity methods ({', '.join(AFFINITY_METHODS)}; default {DEFAULT_METHOD}): "
        "train one multi-task network, measure inter-task affinity and write the max_affinity problem, "
        "which allows half-size single-task networks (cost 0.5) unless --no-half-singletons. "
        f"{WARM_START_METHOD}: train the all-task network once, fine-tune a copy on each task subset "
        f"(all subsets up to {ALL_SUBSETS_UP_TO} tasks, else single tasks and pairs, plus the all-task "
        "set) and write the explicit problem of their validation losses with bootstrap draws for trust "
        f"reports. Built-in datasets: {', '.join(BUILTIN_DATASETS)}.",
    )
    add_dataset_arguments(p)
    p.add_argument(
        "--method",
        action="append",
        default=None,
        choices=METHODS,
        help=f"{DEFAULT_METHOD} (the default) or other affinity methods (repeat for several; the first "
        f"one fills the problem), or {WARM_START_METHOD}, which cannot be combined with affinity "
        "methods in one file",
    )
    p.add_argument(
        "--half-singletons",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="affinity methods: the written problem also offers each task a half-size single-task "
        f"network (cost 0.5, scoring 0; \"half_singletons\": true); {WARM_START_METHOD}: also fine-tune "
        "a half-size all-task network on each single task. Default on; --no-half-singletons turns "
        "it off (for the affinity methods: TAG's published rule)",
    )
    p.add_argument(
        "--finetune-epochs",
        type=float,
        default=DEFAULT_FINETUNE_EPOCHS,
        help=f"{WARM_START_METHOD}: fine-tuning passes over the training split per subset "
        f"(default {DEFAULT_FINETUNE_EPOCHS})",
    )
    p.add_argument(
        "--val-draws",
        type=non_negative_int,
        default=DEFAULT_VAL_DRAWS,
        help=f"{WARM_START_METHOD}: bootstrap draws of the validation losses stored under "
        f"metadata.val_draws (0 to {MAX_VAL_DRAWS}; default {DEFAULT_VAL_DRAWS}; 0 leaves them out)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help=f"{WARM_START_METHOD}: processes fine-tuning subsets in parallel (default 1; the table is "
        "the same for any number)",
    )
    p.add_argument("--every", type=positive_int,
                   help="affinity methods: measure affinity every N steps, >= 1 (default 10)")
    p.add_argument("--epochs", type=positive_int,
                   help="training epochs, >= 1 (default: the dataset's, else 20)")
    p.add_argument("--seed", type=seed_int, default=0,
                   help="seed for the split, initialisation and batches (default 0)")
    p.add_argument("--optimizer", choices=["sgd", "momentum", "adam"], default="sgd")
    p.add_argument("--lr", type=finite_positive_float, help="learning rate (default 0.03)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="examples per step (default 64)")
    p.add_argument("--width", type=finite_positive_float, default=1.0,
                   help="network size as a fraction of full size (default 1)")
    p.add_argument("--backbone", choices=["auto", "mlp", "cnn"], default="auto",
                   help="shared backbone (default: cnn for image data, mlp for tables)")
    p.add_argument("--hidden-units", type=positive_int,
                   help="full-size MLP hidden layer width (default 128)")
    p.add_argument("--hidden-layers", type=positive_int, help="MLP hidden layers (default 2)")
    p.add_argument("--channels", type=positive_int, help="full-size CNN first-block channels (default 16)")
    p.add_argument("--representation", type=positive_int,
                   help="size of the shared output the heads read (default 64)")
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
        type=positive_int,
        default=1,
        help="CPU threads for torch (default 1: small surrogate networks run fastest on one; "
        f"{WARM_START_METHOD} always trains on one thread per process)",
    )
    p.add_argument(
        "--singletons",
        choices=SINGLETON_POLICIES,
        help="affinity methods: forbid (default): a task is served alone only by a half-size network "
        "(never, with --no-half-singletons: TAG's rule); normalized: affinities divided by the "
        "self-affinity, serving alone scores 0",
    )
    p.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="affinity methods: save a checkpoint each epoch here and resume from it",
    )
    p.add_argument("--out", type=output_file, required=True,
                   help="where to write the problem JSON (its folder must exist)")
    p.add_argument("--json", action="store_true",
                   help="print a summary of the run as JSON on standard output (the problem goes to --out)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler: build the specs, run the method (see the module docstring), write ``--out``.

    ``InputError`` naming the option for arguments that do not fit together (``warm_start`` with an
    affinity method or an affinity-only option) or a dataset that cannot be read."""
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
    dataset_spec = dataset_spec_from_args(args, split_seed=args.seed)
    dataset = load_dataset(dataset_spec)
    epochs = args.epochs if args.epochs is not None else dataset.default_epochs or TrainingConfig().epochs
    training_args: dict[str, Any] = {
        "optimizer": args.optimizer,
        "every": args.every,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "device": args.device,
        "epochs": epochs,
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
    problem = result.to_problem_dict(
        methods[0], singletons=args.singletons, half_singletons=args.half_singletons
    )
    stored = result.to_dict()
    problem["metadata"]["matrices"] = stored["matrices"]
    problem["metadata"]["trajectories"] = stored["trajectories"]
    _write(args.out, problem)
    meta = result.metadata
    halves = "half-size singletons allowed" if args.half_singletons else "no half-size singletons"
    _summary(args, methods=methods, tasks=list(result.tasks), epochs=meta["epochs"],
             affinity_steps=meta["affinity_steps"], wall_seconds=meta["wall_seconds"], device=meta["device"],
             singletons=args.singletons, half_singletons=args.half_singletons)
    print(
        f"affinity ({', '.join(methods)}) for {len(result.tasks)} tasks: {meta['epochs']} epochs, "
        f"{meta['affinity_steps']} measured steps, {meta['wall_seconds']:.1f}s on {meta['device']} "
        f"-> {args.out} ({methods[0]}, singletons {args.singletons}, {halves})",
        file=sys.stderr,
    )
    return 0


def _summary(args: argparse.Namespace, **facts: Any) -> None:
    """With ``--json``: what was run and where it was written, as one JSON object on standard output."""
    if args.json:
        print(json.dumps({"out": str(args.out), **facts}, indent=2), flush=True)


def _write(out: Path, problem: dict[str, Any]) -> None:
    """Write ``problem`` as JSON to ``out`` (``InputError`` naming ``--out`` when that fails)."""
    try:
        out.write_text(json.dumps(problem, indent=1) + "\n")
    except OSError as exc:
        raise InputError("--out", f"cannot write {out}: {exc.strerror or exc}") from None


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
    _write(args.out, table.problem_document("val", normalize="stl"))
    meta = table.metadata
    _summary(args, methods=[WARM_START_METHOD], tasks=list(table.tasks), networks=meta["networks_trained"],
             mtl_runs=meta["mtl_runs"]["total"], wall_seconds=meta["wall_seconds"])
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
