"""``train_network``: train one STL or MTL network on a subset of tasks and report its losses and cost."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from grouping.data.dataset import Dataset
from grouping.training.config import ModelConfig, TrainingConfig
from grouping.training.cost import relative_cost
from grouping.training.evaluate import split_losses
from grouping.training.loop import fit
from grouping.training.progress import Progress


@dataclass
class TrainResult:
    """Per-task losses of the best-validation checkpoint on val and test, the epochs run, the inference
    cost in full-size-network units (measured multiply-adds ratio) and the wall time."""

    val_loss: dict[str, float]
    test_loss: dict[str, float]
    epochs_run: int
    cost: float
    seconds: float
    best_epoch: int
    device: str


def train_network(
    dataset: Dataset,
    tasks: Sequence[str],
    model: ModelConfig,
    training: TrainingConfig,
    *,
    progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    checkpoint_dir: Path | None = None,
) -> TrainResult:
    """Train a hard-sharing network on ``tasks`` (one task: a single-task network) with early stopping
    on the weighted validation loss; evaluate the best checkpoint on the test split.

    Raises ``InputError`` for unknown or repeated tasks, a split smaller than a batch or a diverging
    loss, and ``Cancelled`` when ``should_cancel()`` turns true.
    """
    started = time.perf_counter()
    result = fit(
        dataset,
        tasks,
        model,
        training,
        progress=progress,
        should_cancel=should_cancel,
        checkpoint_dir=checkpoint_dir,
    )
    specs = [dataset.task(name) for name in tasks]
    device = next(result.model.parameters()).device
    test_loss = split_losses(result.model, dataset.test.to(device), specs)
    cost = relative_cost(
        dataset.input_kind, dataset.input_shape, {name: dataset.output_dims[name] for name in tasks}, model
    )
    return TrainResult(
        result.val_loss,
        test_loss,
        result.epochs_run,
        cost,
        time.perf_counter() - started,
        result.best_epoch,
        result.device,
    )
