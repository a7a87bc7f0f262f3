"""The slow, literal lookahead of TAG eq. 1, for checking ``tag`` and as the benchmark's naive baseline.

For each task i: deep-copy the network and its optimizer, take one real optimizer step on w_i L_i with
the heads' gradients removed (so only the shared parameters move), and recompute every task's loss on
the same batch, or on a held-out batch V (``lookahead_batch="val"``). Returns
M[j][i] = Z_{i→j} = 1 − L_j(θ_{s|i}) / L_j(θ_s), the losses on X or V.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from grouping.data.spec import TaskSpec
from grouping.training.loop import batch_losses
from grouping.training.model import MultiTaskNet


def naive_tag_step(
    model: MultiTaskNet,
    optimizer: torch.optim.Optimizer,
    tasks: Sequence[TaskSpec],
    x: torch.Tensor,
    y: dict[str, torch.Tensor],
    held_out: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None,
) -> torch.Tensor:
    """One step's TAG matrix (row = onto, column = from) by deep copies and real optimizer steps on
    ``(x, y)``; the losses before and after are measured on ``held_out`` when given, else on ``(x, y)``."""
    mx, my = held_out if held_out is not None else (x, y)
    with torch.no_grad():
        before = batch_losses(model, tasks, mx, my)
    columns = []
    for i, task in enumerate(tasks):
        trial = copy.deepcopy(model)
        trial_opt = type(optimizer)(trial.parameters(), **optimizer.defaults)
        trial_opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # load_state_dict shares tensors
        trial_opt.zero_grad(set_to_none=True)
        (task.weight * batch_losses(trial, tasks, x, y)[i]).backward()
        for p in trial.heads.parameters():
            p.grad = None
        trial_opt.step()
        with torch.no_grad():
            after = batch_losses(trial, tasks, mx, my)
        columns.append(1.0 - after / before)  # Z_{i→j} for every j: column i of M
    return torch.stack(columns, dim=1)
