"""A search-free upper bound for affinity selection: every task chooses the size of its own group.

A task ``i`` served by a full-size group of ``m >= 2`` tasks scores at most

    f_i(m) = top_{m-1}(A[i]) / (m - 1)        (the mean of its ``m - 1`` best partners),

and a group of ``m`` tasks serves at most ``m`` of them, so in any selection the tasks' shares
``c(m_i) = 1 / m_i`` of a full-size network sum to at most the number of full-size networks. A task
served alone scores 0 and uses a network of its own: ``c = c_alone`` (1/2 for a half-size singleton, 1
for a full-size one under ``singletons="normalized"``; no such option under ``forbid`` without
half-size singletons). With ``B`` the budget in full-size networks, dualising ``sum_i c(m_i) <= B``
with ``lambda >= 0`` gives, for every ``lambda``,

    value <= U(lambda) = lambda B + sum_i max( max_{m >= 2} (f_i(m) - lambda / m),  -lambda c_alone ).

``U`` is convex (a maximum of lines in ``lambda`` summed), so a golden-section search finds its
minimum; every point it evaluates is a valid bound and the smallest one is returned.
"""

from __future__ import annotations

import math

import numpy as np

#: golden-section steps (the interval shrinks by 0.618 per step)
STEPS = 120


def size_bound(a: np.ndarray, budget: float, alone_cost: float | None) -> float:
    """``min_lambda U(lambda)`` (module docstring) for score matrix ``A`` (zero diagonal), ``budget`` in
    full-size networks and the cost of serving a task alone (``None`` when it may not be)."""
    a = np.asarray(a, dtype=float)
    n = len(a)
    masked = a.copy()
    np.fill_diagonal(masked, -np.inf)
    sizes = np.arange(2, n + 1)
    value = np.cumsum(-np.sort(-masked, axis=1), axis=1)[:, :n - 1] / (sizes - 1)  # f_i(m), m = 2..n
    share = 1.0 / sizes
    if alone_cost is not None:
        value = np.column_stack([value, np.zeros(n)])
        share = np.append(share, alone_cost)

    def upper(lam: float) -> float:
        return lam * budget + float((value - lam * share).max(axis=1).sum())

    lo, hi = 0.0, 2.0 * max(1.0, n) * max(1e-12, float(np.abs(a).max())) / max(min(share), 1e-12)
    best = min(upper(lo), upper(hi))
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    u1, u2 = upper(x1), upper(x2)
    for _ in range(STEPS):
        best = min(best, u1, u2)
        if u1 <= u2:
            hi, x2, u2 = x2, x1, u1
            x1 = hi - ratio * (hi - lo)
            u1 = upper(x1)
        else:
            lo, x1, u1 = x1, x2, u2
            x2 = lo + ratio * (hi - lo)
            u2 = upper(x2)
    return min(best, u1, u2)
