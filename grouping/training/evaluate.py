"""Per-task mean losses of a network on a whole split (no gradients, in chunks)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from grouping.data.dataset import Split
from grouping.data.spec import TaskSpec
from grouping.training.losses import task_loss
from grouping.training.model import MultiTaskNet


@torch.no_grad()
def split_losses(
    model: MultiTaskNet, split: Split, tasks: Sequence[TaskSpec], *, chunk: int = 4096
) -> dict[str, float]:
    """Unweighted mean loss of each task over every example of ``split`` (already on the model's device)."""
    totals = {task.name: 0.0 for task in tasks}
    for start in range(0, len(split), chunk):
        out = model(split.x[start : start + chunk])
        for task in tasks:
            y = split.y[task.name][start : start + chunk]
            totals[task.name] += float(task_loss(task.loss, out[task.name], y)) * len(y)
    return {name: total / len(split) for name, total in totals.items()}
