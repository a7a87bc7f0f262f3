"""Representation similarity analysis (RSA, ``000_e39fa9ea70ed03c5.txt`` Table 12 eq. 9; Dwivedi and
Roig 2019): how alike two STL backbones lay out the same probe examples.

The representation dissimilarity matrix of a backbone is RDM[x][y] = 1 − Pearson(θ_B(x), θ_B(y)) over
the probe examples; RSA(a, b) is the Spearman correlation (``scipy.stats.spearmanr``) of the upper
triangles of the two RDMs. Symmetric, in [−1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr

from grouping.scores.pairwise import symmetric_matrix


def rdm(representations: np.ndarray) -> np.ndarray:
    """1 − the Pearson correlation of every pair of rows (examples); a constant row correlates 0."""
    centred = representations - representations.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    unit = np.divide(centred, norms, out=np.zeros_like(centred, dtype=float), where=norms > 0)
    return 1.0 - unit @ unit.T


def rsa(rep_a: np.ndarray, rep_b: np.ndarray) -> float:
    """Spearman correlation of the upper triangles of the two RDMs (same probe examples, same order)."""
    upper = np.triu_indices(len(rep_a), k=1)
    return float(spearmanr(rdm(rep_a)[upper], rdm(rep_b)[upper]).statistic)


def rsa_matrix(representations: Sequence[np.ndarray]) -> np.ndarray:
    """RSA of every pair of backbones (one representation array per task); NaN diagonal."""
    return symmetric_matrix(representations, rsa)
