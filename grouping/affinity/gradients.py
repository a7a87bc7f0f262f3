"""Per-task gradients on the shared parameters, shared by every estimator.

For the vector of per-task losses L (T,) and weights w, ``torch.autograd.grad(L, θ_s,
grad_outputs=diag(w), is_grads_batched=True)`` back-propagates the T one-hot cotangents together (vmap
over the backward graph) and yields ∇_{θ_s}(w_t L_t) for every t at once, on any module layout. Where
an operation has no batching rule, T separate backward passes give the same.

With ``features`` z, the output of the shared parameters that every task reads (torchjd's
``mtl_backward`` calls it the same), task t reaches θ_s only through z, so
∇_{θ_s}(w_t L_t) = (∂z/∂θ_s)ᵀ ∂(w_t L_t)/∂z: the batched pass runs through the heads to z, then the T
cotangents through the backbone together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class TaskGradients:
    """One batch's per-task quantities, in task order.

    ``losses[t]`` = L_t (unweighted); ``weights[t]`` = w_t > 0; ``shared[k][t]`` = ∇_{θ_s}(w_t L_t) for
    the k-th shared parameter: task t's share of the training gradient, which is also the gradient a
    step on task t alone applies (TAG eq. 1).
    """

    losses: torch.Tensor
    weights: torch.Tensor
    shared: list[torch.Tensor]

    def gram(self) -> torch.Tensor:
        """G[i, j] = ⟨∇_{θ_s}(w_i L_i), ∇_{θ_s}(w_j L_j)⟩ summed over the shared parameters."""
        return sum(g.flatten(1) @ g.flatten(1).T for g in self.shared)

    def inner(self, others: Sequence[torch.Tensor]) -> torch.Tensor:
        """G[j, i] = ⟨∇_{θ_s} L_j, others_i⟩ summed over the shared parameters, for per-task tensors
        ``others[k]`` shaped like ``shared[k]`` (no concatenated copy of the gradients is made)."""
        weighted = sum(g.flatten(1) @ o.flatten(1).T for g, o in zip(self.shared, others, strict=True))
        return weighted / self.weights.unsqueeze(1)


def task_gradients(
    losses: torch.Tensor,
    shared: Sequence[torch.nn.Parameter],
    weights: torch.Tensor,
    features: torch.Tensor | None = None,
) -> TaskGradients:
    """The per-task gradients of the (T,) ``losses`` on the ``shared`` parameters (see the module
    docstring). The graph is kept (a training backward may follow); a shared parameter that no loss
    reaches gets zero gradients."""
    w = weights.to(device=losses.device, dtype=losses.dtype)
    cotangents = torch.diag(w)
    if features is not None:
        (at_features,) = torch.autograd.grad(
            losses, features, grad_outputs=cotangents, is_grads_batched=True, retain_graph=True
        )
        losses_to, cotangents = features, at_features
    else:
        losses_to = losses
    try:
        grads = torch.autograd.grad(
            losses_to,
            shared,
            grad_outputs=cotangents,
            is_grads_batched=True,
            retain_graph=True,
            allow_unused=True,
        )
    except RuntimeError:  # an operation without a batching rule: one backward pass per task
        rows = [
            torch.autograd.grad(losses_to, shared, grad_outputs=c, retain_graph=True, allow_unused=True)
            for c in cotangents
        ]
        grads = tuple(
            torch.stack([row[k] if row[k] is not None else torch.zeros_like(p) for row in rows])
            for k, p in enumerate(shared)
        )
    per_task = [
        g if g is not None else torch.zeros((len(w), *p.shape), dtype=p.dtype, device=p.device)
        for g, p in zip(grads, shared, strict=True)
    ]
    return TaskGradients(losses.detach(), w, per_task)
