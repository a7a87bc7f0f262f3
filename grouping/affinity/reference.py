"""The slow, literal lookahead of TAG eq. 1, for checking ``tag`` and as the benchmark's naive baseline.

For each task i: deep-copy the model and rebuild its optimizer on the copy with a deep copy of the
optimizer's state, take one real optimizer step on w_i L_i with every non-shared parameter's gradient
removed (so only the shared parameters move), and recompute every task's loss, on the same batch or on
a held-out one. The losses before are also taken on a copy, so the model itself (its BatchNorm running
statistics included) is untouched. Returns M[j][i] = Z_{i→j} = 1 − L_j(θ_{s|i}) / L_j(θ_s).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Sequence

import torch

#: per-task losses (a (T,) tensor in task order) of the given model on a fixed batch
TaskLosses = Callable[[torch.nn.Module], torch.Tensor]


def naive_tag_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    shared: Collection[str],
    losses: TaskLosses,
    weights: Sequence[float],
    measured: TaskLosses | None = None,
) -> torch.Tensor:
    """One step's TAG matrix (row = onto, column = from) by deep copies and real optimizer steps on
    ``losses`` (weighted by ``weights``), the parameters named in ``shared`` (``model.named_parameters``
    names) being the only ones stepped; the losses before and after are ``measured`` when given (a
    held-out batch), else ``losses``."""
    measured = measured or losses
    with torch.no_grad():
        before = measured(copy.deepcopy(model))
    columns = []
    for i, weight in enumerate(weights):
        trial, trial_opt = _copies(model, optimizer)
        trial_opt.zero_grad(set_to_none=True)
        (weight * losses(trial)[i]).backward()
        for name, p in trial.named_parameters():
            if name not in shared:
                p.grad = None
        trial_opt.step()
        with torch.no_grad():
            after = measured(trial)
        columns.append(1.0 - after / before)  # Z_{i→j} for every j: column i of M
    return torch.stack(columns, dim=1)


def _copies(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A deep copy of ``model`` and an optimizer of the same type and groups on it, with a deep copy of
    ``optimizer``'s state (``load_state_dict`` would share its tensors)."""
    trial = copy.deepcopy(model)
    twin = dict(zip(model.parameters(), trial.parameters(), strict=True))
    groups = [{**group, "params": [twin[p] for p in group["params"]]} for group in optimizer.param_groups]
    trial_opt = type(optimizer)(groups)
    trial_opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    return trial, trial_opt
