"""``tag_first_order``: first-order Taylor approximation of the lookahead affinity
(Fifty et al. 2021b, "Measuring and Harnessing Transference", §3.2).

Z_{i→j} ≈ ⟨∇_{θ_s} L_j, ∇_{θ_s} L_i⟩ / L_j, written there for SGD "ignoring the learning rate". We keep
the step: with u_i = θ_s − θ_{s|i} the update the optimizer in use would make from task i alone
(η w_i ∇L_i for plain SGD), Z_{i→j} ≈ ⟨∇_{θ_s} L_j, u_i⟩ / L_j, which is the first-order expansion of
``tag`` for every optimizer and tends to it as η → 0. Stored as M[j][i] (row = onto, column = from).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from grouping.affinity.gradients import TaskGradients
from grouping.affinity.lookahead import sgd_steps, simulated_updates


def first_order_step(inner: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """M[j, i] = inner[j, i] / losses[j], where inner[j, i] = ⟨∇_{θ_s} L_j, u_i⟩ (``TaskGradients.inner``)."""
    return inner / losses.unsqueeze(1)


def first_order_inner(
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.nn.Parameter],
    grads: TaskGradients,
    updates: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """inner[j, i] = ⟨∇_{θ_s} L_j, u_i⟩ for the update u_i ``optimizer`` would make from task i alone.

    From ``updates`` when the caller has them (``tag`` needs them anyway). For SGD without them, with
    u_i = η (w_i g_i + c) (``sgd_steps``): inner[j, i] = η (⟨w_j g_j, w_i g_i⟩ + ⟨w_j g_j, c⟩) / w_j,
    from the Gram matrix and one inner product per task, without forming the (T, P) updates; other
    optimizers form them (``simulated_updates``)."""
    if updates is not None:
        return grads.inner(updates)
    if not isinstance(optimizer, torch.optim.SGD):
        return grads.inner(simulated_updates(optimizer, params, grads.shared))
    parts = []
    for (lr, offset), g in zip(sgd_steps(optimizer, params), grads.shared, strict=True):
        flat = g.flatten(1)
        part = flat @ flat.T
        if offset is not None:
            part = part + (flat @ offset.flatten()).unsqueeze(1)
        parts.append(lr * part)
    return sum(parts) / grads.weights.unsqueeze(1)
