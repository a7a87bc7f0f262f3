"""Train independent networks in parallel: a process pool, one torch thread per process.

Every worker loads the dataset once from its :class:`DatasetSpec` (loading is deterministic) and trains
the jobs it is handed; each network is seeded by ``training.seed`` alone, so its result does not depend
on which worker trains it or in what order. ``workers=1`` trains in this process (no pool).
``starts`` (trained weights that warm-started jobs begin from) travel to each worker once.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import torch

from grouping.data.dataset import Dataset
from grouping.data.loader import load_dataset
from grouping.data.spec import DatasetSpec
from grouping.errors import InputError
from grouping.tables.jobs import NetworkJob, StateDict, TrainedNetwork, train_job
from grouping.training.config import ModelConfig, TrainingConfig

#: called after each finished network with (finished count, total, the network)
OnDone = Callable[[int, int, TrainedNetwork], None]

_worker_dataset: Dataset | None = None
_worker_starts: Mapping[str, StateDict] | None = None


def default_workers() -> int:
    """The CPU cores this process may use (``os.sched_getaffinity``), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not every platform has it
        return max(1, os.cpu_count() or 1)


def train_all(
    spec: DatasetSpec,
    jobs: Sequence[NetworkJob],
    model: ModelConfig,
    training: TrainingConfig,
    *,
    workers: int | None = None,
    on_done: OnDone | None = None,
    starts: Mapping[str, StateDict] | None = None,
) -> list[TrainedNetwork]:
    """Train every job (results in job order). Raises ``InputError`` for bad data or a diverging loss.

    An exception from a network or from ``on_done`` (which may raise, e.g. ``Cancelled``, to stop the
    work) cancels the networks not yet started; the pool then waits only for those running.

    ``starts``: the named weights that jobs with ``start`` begin from (see :func:`train_job`)."""
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise InputError("workers", f"must be at least 1, got {workers}")
    workers = min(workers, max(1, len(jobs)))
    results: list[TrainedNetwork | None] = [None] * len(jobs)
    if workers == 1:
        dataset = load_dataset(spec)
        for k, job in enumerate(jobs):
            results[k] = train_job(dataset, job, model, training, starts)
            if on_done is not None:
                on_done(k + 1, len(jobs), results[k])
        return list(results)  # type: ignore[arg-type]
    context = multiprocessing.get_context("spawn")  # no forked torch thread pools
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(spec, starts)) as pool:
        futures = {pool.submit(_run, job, model, training): k for k, job in enumerate(jobs)}
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                k = futures[future]
                results[k] = future.result()
                if on_done is not None:
                    on_done(done, len(jobs), results[k])
        except BaseException:  # a failed network or on_done raising (e.g. Cancelled): drop the queue
            for future in futures:
                future.cancel()
            raise
    return list(results)  # type: ignore[arg-type]


def _init_worker(spec: DatasetSpec, starts: Mapping[str, StateDict] | None) -> None:
    global _worker_dataset, _worker_starts
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    _worker_dataset = load_dataset(spec)
    _worker_starts = starts


def _run(job: NetworkJob, model: ModelConfig, training: TrainingConfig) -> TrainedNetwork:
    assert _worker_dataset is not None, "worker not initialised"
    return train_job(_worker_dataset, job, model, training, _worker_starts)
