"""The held-out batches of ``lookahead_batch="val"``: where the lookahead losses are measured.

TAG eq. 1, Z_{i→j} = 1 − L_j(X, θ_{s|i}) / L_j(X, θ_s), evaluates L_j on the same batch X whose task-i
gradient made the lookahead step θ_{s|i}, which rewards fitting that batch's noise. With
``lookahead_batch="val"`` the step is unchanged and both losses are measured on a batch V drawn from the
validation split: Z_{i→j} = 1 − L_j(V, θ_{s|i}) / L_j(V, θ_s), one V per measured step, shared by
every i and j of that step.

The k-th measured step's batch is a function of (seed, k) only: the validation rows are shuffled once
per pass with a NumPy generator seeded by (seed, pass) and cut into ⌊n_val / batch_size⌋ batches (the
remainder of each pass is dropped, as a sampler with ``drop_last`` would). Drawing touches neither
torch's global generator nor the training loop's shuffling generator, and the tracker undoes any
buffer update and random draw of its forwards (:mod:`grouping.affinity.lookahead`), so measuring on V
leaves the training trajectory exactly as it is without the option; the surrogate's observer
(:mod:`grouping.affinity.surrogate`) checkpoints k, so a resumed run draws the same batches.
"""

from __future__ import annotations

import numpy as np
import torch

from grouping.data.dataset import Split
from grouping.errors import InputError

#: separates this stream from any other use of the training seed
_STREAM = 0x4C4F4F4B  # "LOOK"


class HeldOutBatches:
    """Batches of ``batch_size`` rows of the validation ``split``, the k-th seeded by (``seed``, k)."""

    def __init__(self, split: Split, batch_size: int, seed: int) -> None:
        if len(split) < batch_size:
            raise InputError(
                "training.lookahead_batch",
                f"the validation split has {len(split)} rows, fewer than one batch of {batch_size}; "
                "the held-out lookahead needs one (use a smaller batch or lookahead_batch 'train')",
            )
        self.split = split
        self.batch_size = batch_size
        self.seed = seed
        self.per_pass = len(split) // batch_size
        self._pass = -1
        self._order = torch.empty(0, dtype=torch.long)

    def indices(self, k: int) -> torch.Tensor:
        """The validation rows of the k-th batch (0-based): batch k mod m of pass ⌊k / m⌋,
        m = ⌊n_val / batch_size⌋."""
        if k < 0:
            raise ValueError(f"batch index must be at least 0, got {k}")
        epoch, j = divmod(k, self.per_pass)
        if epoch != self._pass:
            rng = np.random.default_rng([self.seed % 2**64, _STREAM, epoch])
            self._order = torch.from_numpy(rng.permutation(len(self.split)))
            self._pass = epoch
        return self._order[j * self.batch_size : (j + 1) * self.batch_size]

    def batch(
        self, k: int, like_x: torch.Tensor, like_y: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The k-th batch on the device and in the dtypes of the training batch ``like_x``/``like_y``."""
        idx = self.indices(k)
        x = self.split.x[idx].to(device=like_x.device, dtype=like_x.dtype)
        y = {name: self.split.y[name][idx].to(device=t.device, dtype=t.dtype) for name, t in like_y.items()}
        return x, y
