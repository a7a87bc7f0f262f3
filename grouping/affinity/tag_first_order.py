"""``tag_first_order``: first-order Taylor approximation of the lookahead affinity
(Fifty et al. 2021b, "Measuring and Harnessing Transference", §3.2).

Z_{i→j} ≈ ⟨∇_{θ_s} L_j, ∇_{θ_s} L_i⟩ / L_j, written there for SGD "ignoring the learning rate". We keep
the step: with u_i = θ_s − θ_{s|i} the update the optimizer in use would make from task i alone
(η w_i ∇L_i for plain SGD), Z_{i→j} ≈ ⟨∇_{θ_s} L_j, u_i⟩ / L_j, which is the first-order expansion of
``tag`` for every optimizer and tends to it as η → 0. Stored as M[j][i] (row = onto, column = from).
"""

from __future__ import annotations

import torch


def first_order_step(inner: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """M[j, i] = inner[j, i] / losses[j], where inner[j, i] = ⟨∇_{θ_s} L_j, u_i⟩ (``TaskGradients.inner``)."""
    return inner / losses.unsqueeze(1)
