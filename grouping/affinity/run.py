"""``compute_affinity``: one training run of the all-task network that measures every requested
method, and ``AffinityRun``, its result in the selection problem's orientation and a storable form.

Importing this module loads neither torch nor the training code (the service reads and writes
``AffinityRun`` without them); ``compute_affinity`` loads them when it trains."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from grouping.affinity.methods import AFFINITY_METHODS
from grouping.errors import InputError
from grouping.problem import AffinityProblem

if TYPE_CHECKING:
    from grouping.data.dataset import Dataset
    from grouping.training.config import ModelConfig, TrainingConfig
    from grouping.training.progress import Progress

#: the singleton rules the selection problem accepts (one source of truth: the problem model)
SINGLETON_POLICIES: tuple[str, ...] = get_args(AffinityProblem.model_fields["singletons"].annotation)


@dataclass
class AffinityRun:
    """Affinity matrices of one run. ``matrices[m][i][j]`` is the affinity ONTO task i FROM task j
    (TAG's Z_{j→i}); ``trajectories[m]`` holds one such matrix per epoch (the mean of that epoch's
    measured steps); ``metadata`` says how they were measured."""

    tasks: list[str]
    matrices: dict[str, np.ndarray]
    trajectories: dict[str, list[np.ndarray]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_problem_dict(
        self, method: str, singletons: str = "forbid", half_singletons: bool = True
    ) -> dict[str, Any]:
        """The selection problem that ``taskgrouper solve`` reads, for ``method``'s matrix: the
        ``max_affinity`` form (:class:`grouping.problem.AffinityProblem`) with full-size networks of
        cost 1, the singleton rule ``singletons`` and the run's metadata (plus ``method``).

        ``half_singletons`` (default ``True``) lets a selection also serve a task alone by a half-size
        single-task network costing 0.5 and scoring 0 (Standley's cost model), so a budget of x.5
        can buy x groups and one such network. It is on by default because selections that may
        spend half a budget unit this way picked clearly better groupings in the grouping-quality
        benchmark (``bench/results/grouping_quality.md``: mean regret of ``tag`` 0.570 → 0.422 and of
        ``tag_first_order`` 0.467 → 0.352); ``False`` gives TAG's published rule. ``InputError``
        naming ``method`` or ``singletons`` when this run has no such matrix or the rule is unknown."""
        if method not in self.matrices:
            raise InputError("method", f"this run has no {method!r} scores (it has {sorted(self.matrices)})")
        if singletons not in SINGLETON_POLICIES:
            raise InputError("singletons", f"use one of {list(SINGLETON_POLICIES)}")
        return {
            "tasks": list(self.tasks),
            "objective": "max_affinity",
            "affinity": {"onto_row_from_column": _jsonable(self.matrices[method])},
            "singletons": singletons,
            "network_cost": 1.0,
            "half_singletons": bool(half_singletons),
            "metadata": {**self.metadata, "method": method},
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (NaN becomes null)."""
        return {
            "tasks": list(self.tasks),
            "matrices": {m: _jsonable(a) for m, a in self.matrices.items()},
            "trajectories": {m: [_jsonable(a) for a in seq] for m, seq in self.trajectories.items()},
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AffinityRun:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tasks=list(data["tasks"]),
            matrices={m: _array(a) for m, a in data["matrices"].items()},
            trajectories={m: [_array(a) for a in seq] for m, seq in data.get("trajectories", {}).items()},
            metadata=dict(data.get("metadata", {})),
        )


def compute_affinity(
    dataset: Dataset,
    methods: Sequence[str],
    model: ModelConfig,
    training: TrainingConfig,
    *,
    progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    checkpoint_dir: Path | None = None,
) -> AffinityRun:
    """Train the all-task network once and measure ``methods`` every ``training.every`` steps (they
    share the per-task gradients). Resumes from ``checkpoint_dir`` when it holds this run's checkpoint.
    Early stopping ends the run as in plain training; the scores average the steps actually run.
    ``training.lookahead_batch`` ``val`` measures the lookahead losses on held-out validation batches
    (:mod:`grouping.affinity.heldout`); the training itself is the same either way."""
    from grouping.affinity.heldout import HeldOutBatches
    from grouping.affinity.surrogate import SurrogateObserver
    from grouping.training.loop import fit

    chosen = _methods(methods)
    if len(dataset.tasks) < 2:
        raise InputError("dataset.tasks", "affinity needs at least two tasks")
    held_out = (
        HeldOutBatches(dataset.val, training.batch_size, training.seed)
        if training.lookahead_batch == "val"
        else None
    )
    observer = SurrogateObserver(dataset.tasks, chosen, training.every, held_out=held_out)
    started = time.perf_counter()
    result = fit(
        dataset,
        dataset.task_names,
        model,
        training,
        observer=observer,
        progress=progress,
        should_cancel=should_cancel,
        checkpoint_dir=checkpoint_dir,
        run_kind="affinity:" + ",".join(chosen),
    )
    means = observer.means()
    metadata = {
        "methods": chosen,
        "orientation": "onto_row_from_column",
        "dataset": dataset.describe(),
        "model": model.model_dump(),
        "training": training.model_dump(),
        "lookahead_batch": training.lookahead_batch,
        "affinity_steps": observer.steps,
        "training_steps": result.steps,
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "device": result.device,
        "wall_seconds": time.perf_counter() - started,
        "final_val_loss": result.val_loss,
    }
    return AffinityRun(
        tasks=dataset.task_names,
        matrices={m: means[m].numpy() for m in chosen},
        trajectories={m: [t.numpy() for t in observer.trajectories[m]] for m in chosen},
        metadata=metadata,
    )


def _methods(methods: Sequence[str]) -> list[str]:
    if isinstance(methods, str):
        methods = [methods]
    chosen = list(dict.fromkeys(methods))
    if not chosen:
        raise InputError("methods", f"choose at least one of {list(AFFINITY_METHODS)}")
    unknown = [m for m in chosen if m not in AFFINITY_METHODS]
    if unknown:
        raise InputError(
            "methods", f"unknown affinity method {unknown[0]!r}; choose from {list(AFFINITY_METHODS)}"
        )
    return chosen


def _jsonable(matrix: np.ndarray) -> list[list[float | None]]:
    return [
        [None if not math.isfinite(v) else float(v) for v in row] for row in np.asarray(matrix, dtype=float)
    ]


def _array(rows: list[list[float | None]]) -> np.ndarray:
    return np.array([[math.nan if v is None else v for v in row] for row in rows], dtype=float)
