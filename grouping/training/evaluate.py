"""Per-task losses of a network on a whole split (no gradients, in chunks): their means, and bootstrap
means over resampled examples (how much a validation estimate moves with the examples it saw)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from grouping.data.dataset import Split
from grouping.data.spec import TaskSpec
from grouping.training.losses import task_loss
from grouping.training.model import MultiTaskNet


@torch.no_grad()
def example_losses(
    model: MultiTaskNet, split: Split, tasks: Sequence[TaskSpec], *, chunk: int = 4096
) -> dict[str, np.ndarray]:
    """Each task's loss on every example of ``split`` (already on the model's device), in float64."""
    parts: dict[str, list[np.ndarray]] = {task.name: [] for task in tasks}
    for start in range(0, len(split), chunk):
        out = model(split.x[start : start + chunk])
        for task in tasks:
            y = split.y[task.name][start : start + chunk]
            # one example per row: task_loss averages over the last batch dimension, here of size 1
            losses = task_loss(task.loss, out[task.name].unsqueeze(-2), y.unsqueeze(-1))
            parts[task.name].append(losses.double().cpu().numpy())
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def split_losses(
    model: MultiTaskNet, split: Split, tasks: Sequence[TaskSpec], *, chunk: int = 4096
) -> dict[str, float]:
    """Unweighted mean loss of each task over every example of ``split`` (already on the model's device)."""
    return {name: float(v.mean()) for name, v in example_losses(model, split, tasks, chunk=chunk).items()}


def bootstrap_means(losses: dict[str, np.ndarray], draws: int, *, seed: int = 0) -> dict[str, list[float]]:
    """``draws`` bootstrap means of each task's per-example ``losses``. The resampled example indices
    depend only on ``seed`` and the number of examples, so every network evaluated on the same split
    gets the same draws: differences between networks are paired."""
    n = len(next(iter(losses.values())))
    picks = np.random.default_rng(seed).integers(0, n, size=(draws, n))
    return {name: v[picks].mean(axis=1).tolist() for name, v in losses.items()}
