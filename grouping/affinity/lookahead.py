"""Simulated optimizer steps on the shared parameters, one per task, and the lookahead losses.

θ_{s|i} is what ``optimizer.step()`` would make of the shared parameters if the batch gradient were
task i's alone, w_i ∇_{θ_s} L_i (TAG §4.1 writes the SGD case, θ_{s|i} = θ_s − η ∇L_i, and notes the
construction holds for other optimizers). The simulation reads the optimizer's current state, so it
matches the real optimizer exactly:

- SGD: d = g + λθ; with momentum μ, b' = μ b + d (b' = d on the first step); θ' = θ − η b'.
- Adam: m' = β₁m + (1−β₁)d, v' = β₂v + (1−β₂)d², k = step + 1;
  θ' = θ − (η / (1−β₁ᵏ)) · m' / (√v' / √(1−β₂ᵏ) + ε).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.func import functional_call

from grouping.data.spec import TaskSpec
from grouping.training.losses import task_loss
from grouping.training.model import MultiTaskNet


def simulated_updates(
    optimizer: torch.optim.Optimizer, params: Sequence[torch.nn.Parameter], grads: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """For each shared parameter θ and its per-task step gradients ``grads[k]`` (T, *θ.shape), the
    per-task update u_i = θ − θ_{s|i} (T, *θ.shape) that one step of ``optimizer`` would apply."""
    if isinstance(optimizer, torch.optim.SGD):
        return [
            lr * (g + offset if offset is not None else g)
            for (lr, offset), g in zip(sgd_steps(optimizer, params), grads, strict=True)
        ]
    if not isinstance(optimizer, torch.optim.Adam):
        raise TypeError(f"no lookahead simulation for {type(optimizer).__name__}")
    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    updates = []
    for p, g in zip(params, grads, strict=True):
        group, state = group_of[id(p)], optimizer.state.get(p, {})
        d = g + group["weight_decay"] * p.detach() if group["weight_decay"] else g
        updates.append(_adam_update(group, state, d))
    return updates


def sgd_steps(
    optimizer: torch.optim.SGD, params: Sequence[torch.nn.Parameter]
) -> list[tuple[float, torch.Tensor | None]]:
    """SGD's simulated step is affine in the task's gradient: u_i = η (g_i + c) with the same
    c = λθ + μb for every task (b the momentum buffer; no μb term before the buffer exists). Returns
    ``(η, c)`` per parameter, ``c`` None where it is zero."""
    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    steps = []
    for p in params:
        group = group_of[id(p)]
        if group["nesterov"] or group["maximize"] or group["dampening"]:
            raise ValueError("the lookahead simulates SGD without nesterov, dampening or maximize")
        offset = group["weight_decay"] * p.detach() if group["weight_decay"] else None
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        if group["momentum"] and buf is not None:
            offset = group["momentum"] * buf if offset is None else offset + group["momentum"] * buf
        steps.append((group["lr"], offset))
    return steps


def _adam_update(group: dict, state: dict, d: torch.Tensor) -> torch.Tensor:
    if group["amsgrad"] or group["maximize"]:
        raise ValueError("the lookahead simulates Adam without amsgrad or maximize")
    beta1, beta2 = group["betas"]
    step = float(state["step"]) + 1.0 if state else 1.0
    m = (1 - beta1) * d
    v = (1 - beta2) * d * d
    if state:
        m = m + beta1 * state["exp_avg"]
        v = v + beta2 * state["exp_avg_sq"]
    bias1 = 1 - beta1**step
    bias2 = 1 - beta2**step
    denom = v.sqrt() / math.sqrt(bias2) + group["eps"]
    return (group["lr"] / bias1) * m / denom


def lookahead_losses(
    model: MultiTaskNet,
    tasks: Sequence[TaskSpec],
    updates: Sequence[torch.Tensor],
    x: torch.Tensor,
    y: dict[str, torch.Tensor],
) -> torch.Tensor:
    """L[i, j] = L_j(x, θ_{s|i}, θ_j): every task's loss after task i's simulated step on the shared
    parameters, heads unchanged (TAG eq. 1's numerator). The T backbone passes run batched under vmap."""
    shifted = {
        name: p.detach() - u for (name, p), u in zip(model.backbone.named_parameters(), updates, strict=True)
    }

    def represent(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return functional_call(model.backbone, params, (x,))

    with torch.no_grad():
        reps = torch.func.vmap(represent)(shifted)  # (T, B, R)
        columns = [task_loss(task.loss, model.heads[task.name](reps), y[task.name]) for task in tasks]
    return torch.stack(columns, dim=1)
