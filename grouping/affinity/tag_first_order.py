"""``tag_first_order``: first-order Taylor approximation of the lookahead affinity
(Fifty et al. 2021b, "Measuring and Harnessing Transference", §3.2).

Z_{i→j} ≈ ⟨∇_{θ_s} L_j, ∇_{θ_s} L_i⟩ / L_j, written there for SGD "ignoring the learning rate". We keep
the step: with u_i = θ_s − θ_{s|i} the update the optimizer in use would make from task i alone
(η w_i ∇L_i for plain SGD), Z_{i→j} ≈ ⟨∇_{θ_s} L_j, u_i⟩ / L_j, which is the first-order expansion of
``tag`` for every optimizer and tends to it as η → 0. Stored as M[j][i] (row = onto, column = from).

With ``lookahead_batch="val"`` the step u_i is still taken from the training batch X, and L_j and its
gradient are those of the held-out batch: Z_{i→j} ≈ ⟨∇_{θ_s} L_j(X_val, θ_s), u_i⟩ / L_j(X_val, θ_s), the
first-order expansion of the held-out ``tag``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from grouping.affinity.gradients import TaskGradients
from grouping.affinity.lookahead import lookahead_updates, sgd_steps


def first_order_step(inner: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """M[j, i] = inner[j, i] / losses[j], where inner[j, i] = ⟨∇_{θ_s} L_j, u_i⟩ (``TaskGradients.inner``)."""
    return inner / losses.unsqueeze(1)


def first_order_inner(
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.nn.Parameter],
    grads: TaskGradients,
    updates: Sequence[torch.Tensor] | None = None,
    onto: TaskGradients | None = None,
) -> torch.Tensor:
    """inner[j, i] = ⟨∇_{θ_s} L_j, u_i⟩ for the update u_i ``optimizer`` would make from task i alone.

    u_i comes from ``grads`` (the training batch, whose task gradients make the step); ∇_{θ_s} L_j from
    ``onto``, the batch the lookahead is measured on: ``grads`` itself by default (TAG eq. 1's X), the
    held-out batch's gradients for ``lookahead_batch="val"``, where
    inner[j, i] = ⟨∇_{θ_s} L_j(X_val, θ_s), u_i(X)⟩.

    From ``updates`` when the caller has them (``tag`` needs them anyway). For SGD without them, with
    u_i = a w_i g_i + c (``sgd_steps``) and h_j = ∇_{θ_s} L_j on the measured batch:
    inner[j, i] = (a ⟨w_j h_j, w_i g_i⟩ + ⟨w_j h_j, c⟩) / w_j, from the (cross-)Gram matrix of the two
    batches' gradients and one inner product per task, without forming the (T, P) updates (exact, as
    the step is affine in g_i); other optimizers form them (``lookahead_updates``)."""
    onto = grads if onto is None else onto
    if updates is not None:
        return onto.inner(updates)
    if type(optimizer) is not torch.optim.SGD:
        return onto.inner(lookahead_updates(optimizer, params, grads.shared))
    parts = []
    for (scale, offset), g, h in zip(sgd_steps(optimizer, params), grads.shared, onto.shared, strict=True):
        measured = h.flatten(1)
        part = scale * (measured @ g.flatten(1).T)
        if isinstance(offset, torch.Tensor):
            part = part + (measured @ offset.flatten()).unsqueeze(1)
        parts.append(part)
    return sum(parts) / onto.weights.unsqueeze(1)
