"""Per-task gradients from one batched backward pass, shared by every estimator.

For the T per-task losses L_t on a batch, ``torch.autograd.grad(..., is_grads_batched=True)`` with
the identity as cotangents back-propagates all T vector-Jacobian products at once (vmap over the
backward graph), instead of T separate backward passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from grouping.data.spec import TaskSpec
from grouping.training.loop import batch_losses
from grouping.training.model import MultiTaskNet


@dataclass
class TaskGradients:
    """``losses[t]`` = L_t on the batch (unweighted); ``shared[k][t]`` = ∇_{θ_s} L_t for the k-th shared
    parameter; ``training`` = gradient of Σ_t w_t L_t for every parameter (what the optimizer steps on)."""

    losses: torch.Tensor
    shared: list[torch.Tensor]
    training: list[torch.Tensor]

    def inner(self, others: Sequence[torch.Tensor]) -> torch.Tensor:
        """G[j, i] = ⟨∇_{θ_s} L_j, others_i⟩ summed over the shared parameters, for per-task tensors
        ``others[k]`` shaped like ``shared[k]`` (no concatenated copy of the gradients is made)."""
        return sum(g.flatten(1) @ o.flatten(1).T for g, o in zip(self.shared, others, strict=True))


def task_gradients(
    model: MultiTaskNet,
    tasks: Sequence[TaskSpec],
    weights: torch.Tensor,
    x: torch.Tensor,
    y: dict[str, torch.Tensor],
) -> TaskGradients:
    """Per-task losses and gradients of ``model`` on the batch, in full precision."""
    params = list(model.parameters())
    n_shared = len(list(model.backbone.parameters()))
    losses = batch_losses(model, tasks, x, y)
    eye = torch.eye(len(tasks), device=losses.device, dtype=losses.dtype)
    grads = torch.autograd.grad(losses, params, grad_outputs=eye, is_grads_batched=True)
    w = weights.to(losses.dtype)
    training = [torch.tensordot(w, g, dims=1) for g in grads]
    return TaskGradients(losses.detach(), list(grads[:n_shared]), training)
