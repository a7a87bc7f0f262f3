"""Input attribution similarity (IAS, ``000_e39fa9ea70ed03c5.txt`` Table 12 eq. 8; Song et al. 2019):

    IAS(a, b) = 1/|X| Σ_{x ∈ X} cos(Attr(STL_a, x), Attr(STL_b, x))

with InputXGradient attributions (:func:`grouping.tables.jobs.input_x_gradient`). Symmetric, in [−1, 1].
An all-zero attribution has cosine 0 with anything.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from grouping.scores.pairwise import symmetric_matrix


def attribution_similarity(attr_a: np.ndarray, attr_b: np.ndarray) -> float:
    """Mean over examples (rows) of the cosine similarity of the two flattened attribution maps."""
    a = attr_a.reshape(len(attr_a), -1)
    b = attr_b.reshape(len(attr_b), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = (a * b).sum(axis=1)
    cosines = np.divide(dots, norms, out=np.zeros_like(dots, dtype=float), where=norms > 0)
    return float(cosines.mean())


def attribution_matrix(attributions: Sequence[np.ndarray]) -> np.ndarray:
    """IAS of every pair of STL networks (one attribution array per task); NaN diagonal."""
    return symmetric_matrix(attributions, attribution_similarity)
