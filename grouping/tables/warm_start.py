"""``warm_start_table``: a cheap higher-order network table by warm-start subset fine-tuning.

The exhaustive table (Standley et al. 2020, §3.1) trains every task subset from scratch: 2^n − 1 full
runs. This method trains the all-task network once (ordinary training, early stopping as usual), then
for each candidate subset S fine-tunes a copy of it on S alone — the shared backbone and the heads of
S, loss Σ_{t∈S} w_t L_t, the other heads unused — for ``finetune_epochs`` passes over the training
split (fractions allowed, counted in optimizer steps). The copy keeps the weights with the best
weighted validation loss over S among the start (the trained all-task weights) and the end of each
fine-tuning epoch; its per-task validation and test losses on S form the table's row for S. An
independent measurement found this cost about 2.6 MTL runs and beat TAG in 8 of 9 cases, which is why
it is offered as a candidate method next to the exhaustive table and the pairwise/ESA approximations.

The rows are full-size networks (``half_singletons`` adds half-size single-task rows fine-tuned from a
half-size all-task network, Standley's half-size singletons), so ``to_problem("val")`` is an explicit
``min_loss`` problem exactly like the exhaustive table's. Every row records its measured inference
cost, epochs run (a partly run epoch counts as one), wall time and, in ``metadata["row_steps"]``, its
optimizer steps; ``metadata`` also records the base runs (``base_epochs``, ``base_steps``,
``base_seconds``, the ``half_base_*`` ones apart) and ``mtl_runs``, the training compute in units of
the all-task run (see :func:`warm_start_table`).

Determinism: each fine-tuning run draws its data order from :func:`finetune_seed` ``(seed, S)`` and
starts from the same trained weights, so a row does not depend on which other subsets are fine-tuned,
in what order, or in which process; the same seed gives bit-identical losses in-process and in the
process pool on the same device (both train on one torch thread: CPU kernels sum in an order that
depends on the thread count).
"""

from __future__ import annotations

import contextlib
import math
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from itertools import combinations

import torch

from grouping.data.loader import load_dataset
from grouping.data.spec import DatasetSpec
from grouping.errors import InputError
from grouping.tables.build import HALF_WIDTH
from grouping.tables.jobs import NetworkJob, TrainedNetwork, train_job
from grouping.tables.pool import OnDone, default_workers, train_all
from grouping.tables.table import NetworkTable, TableRow
from grouping.training.config import ModelConfig, TrainingConfig
from grouping.training.progress import Cancelled, Progress

WARM_START_METHOD = "warm_start"
#: up to this many tasks the default candidates are all non-empty subsets; above, singles and pairs
ALL_SUBSETS_UP_TO = 6
#: the most fine-tuning epochs accepted (the training config's own epoch limit)
MAX_FINETUNE_EPOCHS = 10_000


def finetune_seed(seed: int, subset: Sequence[str]) -> int:
    """The seed of the fine-tuning run on ``subset`` (its data order): a function of the table's seed
    and the subset's tasks alone, so a row does not depend on the order its runs are trained in."""
    return zlib.crc32(f"warm_start:{seed}:{'+'.join(subset)}".encode())


#: most bootstrap draws of the validation losses a table stores per row
MAX_VAL_DRAWS = 1000


def candidate_subsets(
    tasks: Sequence[str],
    subsets: Sequence[Sequence[str]] | None = None,
    extra_subsets: Sequence[Sequence[str]] = (),
) -> list[tuple[str, ...]]:
    """The subsets to fine-tune on, each in ``tasks`` order, by size then task order, without repeats.

    ``subsets`` replaces the default candidates: every non-empty subset for up to
    :data:`ALL_SUBSETS_UP_TO` tasks, else every single task and pair. ``extra_subsets`` are added
    (e.g. the top groups an affinity score proposes). ``InputError`` for an empty subset, an unknown or
    repeated task, or a task no candidate covers (the selection problem could not serve it).
    """
    position = {task: k for k, task in enumerate(tasks)}
    if subsets is None:
        largest = len(tasks) if len(tasks) <= ALL_SUBSETS_UP_TO else 2
        subsets = [group for size in range(1, largest + 1) for group in combinations(tasks, size)]
    chosen: set[tuple[str, ...]] = set()
    for subset in [*subsets, *extra_subsets]:
        if not subset:
            raise InputError("subsets", "a candidate subset is empty")
        unknown = [task for task in subset if task not in position]
        if unknown:
            raise InputError("subsets", f"task {unknown[0]!r} is not in the dataset (tasks: {list(tasks)})")
        if len(set(subset)) != len(subset):
            raise InputError("subsets", f"the subset {list(subset)} lists a task twice")
        chosen.add(tuple(sorted(subset, key=position.__getitem__)))
    uncovered = [task for task in tasks if not any(task in subset for subset in chosen)]
    if uncovered:
        raise InputError("subsets", f"no candidate subset contains task {uncovered[0]!r}")
    return sorted(chosen, key=lambda subset: (len(subset), [position[t] for t in subset]))


def network_count(
    tasks: Sequence[str],
    subsets: Sequence[Sequence[str]] | None = None,
    extra_subsets: Sequence[Sequence[str]] = (),
    half_singletons: bool = False,
) -> int:
    """How many networks :func:`warm_start_table` trains for these arguments: the base run(s) (two with
    ``half_singletons``), one fine-tuning run per candidate subset (:func:`candidate_subsets`, which
    raises ``InputError`` for bad subsets) and, with ``half_singletons``, one per task."""
    halves = len(tasks) if half_singletons else 0
    return 1 + int(half_singletons) + len(candidate_subsets(tasks, subsets, extra_subsets)) + halves


def warm_start_table(
    spec: DatasetSpec,
    model: ModelConfig,
    training: TrainingConfig,
    *,
    finetune_epochs: float = 1.0,
    subsets: Sequence[Sequence[str]] | None = None,
    extra_subsets: Sequence[Sequence[str]] = (),
    half_singletons: bool = False,
    val_draws: int = 0,
    workers: int | None = None,
    on_done: OnDone | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> NetworkTable:
    """Train the all-task network of ``spec``'s tasks, fine-tune a copy of it on each candidate subset
    (:func:`candidate_subsets`) and return the table of the fine-tuned networks (see the module
    docstring); ``method`` is ``"warm_start"``.

    ``finetune_epochs`` (≥ 0, default 1) passes over the training split per subset, rounded to whole
    optimizer steps; 0 records the all-task network's own losses on each subset. Each fine-tuning run
    uses ``training`` (optimizer, learning rate, patience; a schedule spans its own
    ⌈``finetune_epochs``⌉ epochs) with a fresh optimizer state. ``half_singletons`` also trains a
    half-size (width 0.5) all-task network and fine-tunes a copy on each single task (``half`` rows).
    The base runs train in this process, the fine-tuning runs in the process pool when ``workers`` > 1
    (:func:`train_all`); everything in this process runs on one torch thread, as each pool worker
    does, so the table is bit-identical whatever ``workers`` is. ``on_done`` sees the base runs and
    then the fine-tuning runs. ``val_draws`` > 0 stores that many bootstrap means of each row's
    validation losses (``TableRow.val_draws``; :meth:`NetworkTable.val_samples` turns them into problem
    samples for :func:`grouping.selection.trust.selection_trust`).

    ``metadata["mtl_runs"]`` counts training compute in all-task runs: each run's optimizer steps times
    its measured inference cost, over the steps of the all-task run (``base`` is 1; ``finetune``,
    ``half_base``, ``half_finetune`` and their ``total``); validation and test passes are not counted.

    ``progress`` receives the table's :class:`~grouping.training.Progress`: ``fraction`` and ``step``
    count the planned optimizer steps of every network (a base run's ``training.epochs`` epochs, each
    fine-tuning run's steps; a run that stops early counts as planned), ``total_steps`` their sum,
    ``epoch`` and ``losses`` those of the network in training. Networks trained in this process report
    every few steps, pool workers when they finish; the last report has ``fraction`` 1.
    ``should_cancel`` is asked before every step of the networks trained in this process and after
    each network; once it answers true the table raises
    :class:`~grouping.training.Cancelled` (networks not yet started in the pool are dropped).
    """
    if not 0 <= val_draws <= MAX_VAL_DRAWS:
        raise InputError("val_draws", f"must lie in [0, {MAX_VAL_DRAWS}], got {val_draws!r}")
    if workers is not None and workers < 1:
        raise InputError("workers", f"must be at least 1, got {workers}")
    if not (math.isfinite(finetune_epochs) and 0.0 <= finetune_epochs <= MAX_FINETUNE_EPOCHS):
        raise InputError("finetune_epochs",
                         f"must lie in [0, {MAX_FINETUNE_EPOCHS}], got {finetune_epochs!r}")
    dataset = load_dataset(spec)
    tasks = dataset.task_names
    groups = candidate_subsets(tasks, subsets, extra_subsets)
    steps_per_epoch = math.ceil(len(dataset.train) / training.batch_size)
    steps = math.floor(finetune_epochs * steps_per_epoch + 0.5)  # to the nearest step, halves up
    epochs = max(1, math.ceil(steps / steps_per_epoch))

    bases = [NetworkJob(tuple(tasks), 1.0, keep_state=True)]
    if half_singletons:
        bases.append(NetworkJob(tuple(tasks), HALF_WIDTH, keep_state=True))

    def finetune(group: tuple[str, ...], width: float, start: str) -> NetworkJob:
        seed = finetune_seed(training.seed, group)
        return NetworkJob(group, width, epochs, start=start, steps=steps, seed=seed, val_draws=val_draws)

    jobs = [finetune(group, 1.0, "full") for group in groups]
    if half_singletons:
        jobs += [finetune((task,), HALF_WIDTH, "half") for task in tasks]
    total = len(bases) + len(jobs)
    tracker = _TableProgress([training.epochs * steps_per_epoch] * len(bases) + [steps] * len(jobs),
                             progress)

    def report(done: int, index: int, net: TrainedNetwork) -> None:
        tracker.finished(index, net)
        if on_done is not None:
            on_done(done, total, net)
        if should_cancel is not None and should_cancel():
            raise Cancelled(f"cancelled after {done} of {total} networks")

    def train_here(job: NetworkJob, index: int, starts: dict | None = None) -> TrainedNetwork:
        return train_job(dataset, job, model, training, starts, progress=tracker.during(index),
                         should_cancel=should_cancel)

    started = time.perf_counter()
    with _one_torch_thread():
        trained_bases = []
        for k, job in enumerate(bases):
            trained_bases.append(train_here(job, k))
            report(k + 1, k, trained_bases[-1])
        starts = {"full": trained_bases[0].state}
        if half_singletons:
            starts["half"] = trained_bases[1].state
        if min(default_workers() if workers is None else workers, len(jobs)) <= 1:
            trained = []
            for k, job in enumerate(jobs):
                trained.append(train_here(job, len(bases) + k, starts))
                report(len(bases) + k + 1, len(bases) + k, trained[-1])
        else:
            position = {job: len(bases) + k for k, job in enumerate(jobs)}
            trained = train_all(spec, jobs, model, training, workers=workers, starts=starts,
                                on_done=lambda k, _n, net: report(len(bases) + k, position[net.job], net))

    base = trained_bases[0]
    metadata = {
        "dataset": spec.model_dump(mode="json"),
        "model": model.model_dump(),
        "training": training.model_dump(),
        "finetune_epochs": finetune_epochs,
        "steps_per_epoch": steps_per_epoch,
        "finetune_steps": steps,
        "half_singletons": half_singletons,
        "networks_trained": total,
        **_base_metadata("base", base),
        "row_steps": [net.steps for net in trained],
        "mtl_runs": _mtl_runs(base, trained_bases[1:], trained),
        "wall_seconds": time.perf_counter() - started,
    }
    if half_singletons:
        metadata.update(_base_metadata("half_base", trained_bases[1]))
    return NetworkTable(list(tasks), WARM_START_METHOD, [TableRow.from_trained(net) for net in trained],
                        metadata)


class _TableProgress:
    """The table's progress over the planned steps of its networks (see :func:`warm_start_table`)."""

    def __init__(self, planned: Sequence[int], sink: Callable[[Progress], None] | None) -> None:
        self.planned = [max(1, p) for p in planned]  # a network of 0 steps still counts as one
        self.total = sum(self.planned)
        self.done = 0
        self.sink = sink

    def during(self, index: int) -> Callable[[Progress], None] | None:
        """The progress callback of network ``index`` trained in this process."""
        if self.sink is None:
            return None
        sink, planned = self.sink, self.planned[index]

        def report(p: Progress) -> None:
            step = self.done + min(planned, round(p.fraction * planned))
            sink(Progress(fraction=min(step / self.total, 1.0), epoch=p.epoch, step=step,
                          total_steps=self.total, losses=p.losses))

        return report

    def finished(self, index: int, net: TrainedNetwork) -> None:
        self.done += self.planned[index]
        if self.sink is not None:
            self.sink(Progress(fraction=min(self.done / self.total, 1.0), epoch=max(net.epochs_run, 1),
                               step=self.done, total_steps=self.total))


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run on one intra-op torch thread, as pool workers do: the reduction order of CPU kernels
    depends on the thread count, and bit-identical rows need the same order everywhere."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _base_metadata(prefix: str, net: TrainedNetwork) -> dict[str, object]:
    """What a base run cost and scored, under ``prefix`` (``base`` or ``half_base``)."""
    facts = {"epochs": net.epochs_run, "steps": net.steps, "seconds": net.seconds, "cost": net.cost,
             "val_loss": net.val_loss, "test_loss": net.test_loss}
    return {f"{prefix}_{name}": value for name, value in facts.items()}


def _mtl_runs(base: TrainedNetwork, half_bases: Sequence[TrainedNetwork], trained: Sequence[TrainedNetwork]
              ) -> dict[str, float]:
    """Training compute (steps × measured cost) of each part in units of the all-task run."""
    unit = max(1, base.steps) * base.cost

    def runs(nets: Sequence[TrainedNetwork]) -> float:
        return sum(net.steps * net.cost for net in nets) / unit

    parts = {"base": runs([base]),
             "finetune": runs([net for net in trained if net.job.size == "full"]),
             "half_base": runs(half_bases),
             "half_finetune": runs([net for net in trained if net.job.size == "half"])}
    return {**parts, "total": sum(parts.values())}
