"""``build_table``: the network-table methods of Standley et al. 2020 (``003_e1b8ce7dfcb85eaf.txt``).

* ``exhaustive`` (§3.1): every one of the 2^n − 1 task sets as a full-size network, plus a half-size
  (width 0.5) single-task network per task, each trained to convergence (early stopping on the
  validation loss) — the ground truth;
* ``pairwise`` (§3.3.2): the single-task networks (full and half) and every pair only; its problem form
  adds the Higher-Order Approximation of every 3+-task network (:func:`higher_order_approximation`);
* ``esa`` (§3.3.1, Early Stopping Approximation): the exhaustive networks, each trained for only
  ``esa_fraction`` of the epochs (at least one); Standley used one pass over 20% of the data.

All networks of a table share one model and training configuration and one seed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import combinations
from typing import Literal

from grouping.data.loader import load_dataset
from grouping.data.spec import DatasetSpec
from grouping.errors import InputError
from grouping.tables.jobs import NetworkJob
from grouping.tables.pool import OnDone, train_all
from grouping.tables.table import NetworkTable, TableRow
from grouping.training.config import ModelConfig, TrainingConfig

Method = Literal["exhaustive", "pairwise", "esa"]
TABLE_METHODS: tuple[str, ...] = ("exhaustive", "pairwise", "esa")
#: the most tasks each method accepts (exhaustive/esa train 2^n − 1 + n networks)
MAX_TASKS: dict[str, int] = {"exhaustive": 10, "esa": 10, "pairwise": 40}
HALF_WIDTH = 0.5


def table_jobs(tasks: Sequence[str], method: str, *, esa_epochs: int | None = None) -> list[NetworkJob]:
    """The networks ``method`` trains: full-size groups (all of them, or those of ≤ 2 tasks for
    ``pairwise``) and one half-size network per task; ``esa_epochs`` caps ESA's training length."""
    largest = 2 if method == "pairwise" else len(tasks)
    epochs = esa_epochs if method == "esa" else None
    jobs = [NetworkJob(tuple(group), 1.0, epochs)
            for size in range(1, largest + 1) for group in combinations(tasks, size)]
    return jobs + [NetworkJob((task,), HALF_WIDTH, epochs) for task in tasks]


def build_table(
    spec: DatasetSpec,
    method: str,
    model: ModelConfig,
    training: TrainingConfig,
    *,
    workers: int | None = None,
    esa_fraction: float = 0.2,
    on_done: OnDone | None = None,
) -> NetworkTable:
    """Train ``method``'s networks on the dataset ``spec`` describes (its tasks, in their order)."""
    if method not in TABLE_METHODS:
        raise InputError("method", f"must be one of {', '.join(TABLE_METHODS)}, got {method!r}")
    if not 0.0 < esa_fraction <= 1.0:
        raise InputError("esa_fraction", f"must lie in (0, 1], got {esa_fraction!r}")
    tasks = load_dataset(spec).task_names
    if len(tasks) > MAX_TASKS[method]:
        raise InputError("dataset.tasks", f"{method} accepts at most {MAX_TASKS[method]} tasks, "
                         f"got {len(tasks)} (list a subset of the tasks)")
    esa_epochs = max(1, round(esa_fraction * training.epochs))
    jobs = table_jobs(tasks, method, esa_epochs=esa_epochs)
    started = time.perf_counter()
    trained = train_all(spec, jobs, model, training, workers=workers, on_done=on_done)
    metadata = {
        "dataset": spec.model_dump(mode="json"),
        "model": model.model_dump(),
        "training": training.model_dump(),
        "networks_trained": len(jobs),
        "wall_seconds": time.perf_counter() - started,
    }
    if method == "esa":
        metadata["esa_epochs"] = esa_epochs
    return NetworkTable(list(tasks), method, [TableRow.from_trained(net) for net in trained], metadata)
