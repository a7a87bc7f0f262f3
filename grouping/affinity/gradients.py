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
    #: whether one batched backward pass gave them (else one pass per task)
    batched: bool = True

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
    batched: bool = True,
) -> TaskGradients:
    """The per-task gradients of the (T,) ``losses`` on the ``shared`` parameters (see the module
    docstring). The graph is kept (a training backward may follow); a shared parameter that no loss
    reaches gets zero gradients. ``batched=False`` skips the batched attempt (a model that has already
    shown an operation without a batching rule)."""
    w = weights.to(device=losses.device, dtype=losses.dtype)
    cotangents = torch.diag(w)
    if features is not None:
        (cotangents,), batched = _batched_grad(losses, [features], cotangents, batched)
        outputs = features
    else:
        outputs = losses
    grads, batched = _batched_grad(outputs, shared, cotangents, batched)
    return TaskGradients(losses.detach(), w, list(grads), batched)


def _batched_grad(
    outputs: torch.Tensor, inputs: Sequence[torch.Tensor], cotangents: torch.Tensor, batched: bool
) -> tuple[list[torch.Tensor], bool]:
    """The vector-Jacobian products of ``outputs`` with each row of ``cotangents`` on ``inputs``
    ((T, *input.shape) each; zeros where an input is not reached), in one batched backward pass when
    ``batched`` and every operation has a batching rule, else one pass per row; and whether batched."""
    grads = None
    if batched:
        try:
            grads = torch.autograd.grad(
                outputs,
                inputs,
                grad_outputs=cotangents,
                is_grads_batched=True,
                retain_graph=True,
                allow_unused=True,
            )
        except RuntimeError:  # an operation without a batching rule
            batched = False
    if grads is None:
        rows = [
            torch.autograd.grad(outputs, inputs, grad_outputs=c, retain_graph=True, allow_unused=True)
            for c in cotangents
        ]
        grads = tuple(
            torch.stack([row[k] if row[k] is not None else torch.zeros_like(x) for row in rows])
            for k, x in enumerate(inputs)
        )
    shape = len(cotangents)
    return [
        g if g is not None else torch.zeros((shape, *x.shape), dtype=x.dtype, device=x.device)
        for g, x in zip(grads, inputs, strict=True)
    ], batched
