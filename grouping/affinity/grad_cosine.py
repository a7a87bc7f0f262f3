"""``grad_cosine``: cosine similarity of the per-task gradients on the shared parameters
(It's a Match, eq. 11; TAG's "CS" baseline). Symmetric, in [−1, 1].

Eq. 11 takes one batch per epoch; we take the same steps as the lookahead scores (every ``every``
steps) and average them, so all methods of a run see identical batches.
"""

from __future__ import annotations

import torch


def cosine_step(gram: torch.Tensor) -> torch.Tensor:
    """C[i, j] = ⟨g_i, g_j⟩ / (‖g_i‖ ‖g_j‖) from the Gram matrix of the per-task shared gradients."""
    norms = gram.diagonal().clamp_min(torch.finfo(gram.dtype).tiny).sqrt()
    return gram / norms.unsqueeze(0) / norms.unsqueeze(1)
