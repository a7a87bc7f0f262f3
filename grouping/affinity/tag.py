"""``tag``: exact lookahead inter-task affinity (Fifty et al. 2021, eq. 1).

Z^t_{i→j} = 1 − L_j(X^t, θ^{t+1}_{s|i}, θ^t_j) / L_j(X^t, θ^t_s, θ^t_j). The matrix stores it as
M[j][i] = Z_{i→j} (row = onto, column = from); the training-level score averages the steps (eq. 2).
"""

from __future__ import annotations

import torch


def tag_step(lookahead: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """M[j, i] = 1 − lookahead[i, j] / losses[j] for one step (``lookahead`` from ``lookahead_losses``)."""
    return (1.0 - lookahead / losses.unsqueeze(0)).T
