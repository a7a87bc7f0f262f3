"""Per-task gradients from one batched backward pass, shared by every estimator.

Task t reaches the shared parameters θ_s only through the shared representation z = f(x; θ_s), so
∇_{θ_s}(w_t L_t) = (∂z/∂θ_s)ᵀ ∂(w_t L_t)/∂z. One ordinary backward pass of Σ_t w_t L_t, with each head
reading its own leaf alias of z, yields every cotangent ∂(w_t L_t)/∂z at once, and the heads' training
gradients (each head belongs to one task). Then ``torch.autograd.grad(z, θ_s, ...,
is_grads_batched=True)`` back-propagates the T cotangents through the backbone together (vmap over the
backward graph) instead of T separate passes. Heads never enter the batched pass, so its cost does not
grow with T × (number of heads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from grouping.data.spec import TaskSpec
from grouping.training.losses import task_loss
from grouping.training.model import MultiTaskNet


@dataclass
class TaskGradients:
    """One batch's per-task quantities, in task order.

    ``losses[t]`` = L_t (unweighted); ``weights[t]`` = w_t > 0; ``shared[k][t]`` = ∇_{θ_s}(w_t L_t) for
    the k-th shared parameter: task t's share of the training gradient, which is also the gradient a
    step on task t alone applies (TAG eq. 1); ``training`` = ∇(Σ_t w_t L_t) for every parameter of the
    model, in ``model.parameters()`` order (what the optimizer steps on; empty for a batch that is only
    measured).
    """

    losses: torch.Tensor
    weights: torch.Tensor
    shared: list[torch.Tensor]
    training: list[torch.Tensor]

    def gram(self) -> torch.Tensor:
        """G[i, j] = ⟨∇_{θ_s}(w_i L_i), ∇_{θ_s}(w_j L_j)⟩ summed over the shared parameters."""
        return sum(g.flatten(1) @ g.flatten(1).T for g in self.shared)

    def inner(self, others: Sequence[torch.Tensor]) -> torch.Tensor:
        """G[j, i] = ⟨∇_{θ_s} L_j, others_i⟩ summed over the shared parameters, for per-task tensors
        ``others[k]`` shaped like ``shared[k]`` (no concatenated copy of the gradients is made)."""
        weighted = sum(g.flatten(1) @ o.flatten(1).T for g, o in zip(self.shared, others, strict=True))
        return weighted / self.weights.unsqueeze(1)


@dataclass(frozen=True)
class ParameterLayout:
    """``model``'s parameters as the per-task gradients need them, listed once per run (walking the
    module tree every measured step costs as much as the scoring): ``shared`` (the backbone), ``heads``
    (in task order), ``parameters`` (``model.parameters()``) and ``order``, where ``parameters[k]`` is
    ``[*shared, *heads][order[k]]``."""

    shared: list[torch.nn.Parameter]
    heads: list[torch.nn.Parameter]
    parameters: list[torch.nn.Parameter]
    order: list[int]

    @classmethod
    def of(cls, model: MultiTaskNet, tasks: Sequence[TaskSpec]) -> ParameterLayout:
        """The layout of ``model`` for ``tasks`` (every parameter is in the backbone or a task's head)."""
        shared = list(model.backbone.parameters())
        heads = [p for task in tasks for p in model.heads[task.name].parameters()]
        position = {p: k for k, p in enumerate([*shared, *heads])}
        parameters = list(model.parameters())
        return cls(shared, heads, parameters, [position[p] for p in parameters])


def task_gradients(
    model: MultiTaskNet,
    tasks: Sequence[TaskSpec],
    weights: torch.Tensor,
    x: torch.Tensor,
    y: dict[str, torch.Tensor],
    layout: ParameterLayout | None = None,
    *,
    training: bool = True,
) -> TaskGradients:
    """Per-task losses and gradients of ``model`` on the batch (``weights[t]`` = w_t, in task order);
    ``layout`` is ``ParameterLayout.of(model, tasks)``, passed in when measuring many steps.
    ``training=False`` skips the heads' gradients and leaves ``TaskGradients.training`` empty (a batch
    that is only measured, such as the held-out lookahead batch, is never stepped on)."""
    layout = layout or ParameterLayout.of(model, tasks)
    shared, heads = layout.shared, (layout.heads if training else [])
    rep = model.backbone(x)
    aliases = [rep.detach().requires_grad_() for _ in tasks]  # one leaf per task: separate cotangents
    losses = torch.stack(
        [
            task_loss(task.loss, model.heads[task.name](z), y[task.name])
            for z, task in zip(aliases, tasks, strict=True)
        ]
    )
    w = weights.to(losses.dtype)
    grads = torch.autograd.grad(w @ losses, [*aliases, *heads])
    cotangents = torch.stack(grads[: len(tasks)])
    per_task = list(torch.autograd.grad(rep, shared, grad_outputs=cotangents, is_grads_batched=True))
    if not training:
        return TaskGradients(losses.detach(), w, per_task, [])
    total = [g.sum(0) for g in per_task] + list(grads[len(tasks) :])
    return TaskGradients(losses.detach(), w, per_task, [total[k] for k in layout.order])
