"""``tag``: exact lookahead inter-task affinity (Fifty et al. 2021, eq. 1).

Z^t_{i→j} = 1 − L_j(X^t, θ^{t+1}_{s|i}, θ^t_j) / L_j(X^t, θ^t_s, θ^t_j). The matrix stores it as
M[j][i] = Z_{i→j} (row = onto, column = from); the training-level score averages the steps (eq. 2).

With ``lookahead_batch="val"`` (``grouping.affinity.heldout``) θ^{t+1}_{s|i} is still the step from task
i's gradient on the training batch X^t, and both losses are measured on a held-out validation batch V^t:
Z^t_{i→j} = 1 − L_j(V^t, θ^{t+1}_{s|i}, θ^t_j) / L_j(V^t, θ^t_s, θ^t_j), so a step that only fits X^t's
noise no longer scores as help.
"""

from __future__ import annotations

import torch


def tag_step(lookahead: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """M[j, i] = 1 − lookahead[i, j] / losses[j] for one step (``lookahead`` from ``lookahead_losses``;
    ``losses`` at θ_s on the same batch)."""
    return (1.0 - lookahead / losses.unsqueeze(0)).T
