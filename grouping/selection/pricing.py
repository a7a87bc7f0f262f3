"""Exact pricing of pairwise-affinity groups for column generation (no 2^n enumeration).

With the master's duals ``pi_i`` (task ``i`` served once) and ``mu >= 0`` (the budget's price of one
full-size group), the reduced cost of a group ``G`` of size ``m >= 2`` — serving exactly the members it
helps — is

    d(G) = sum_{i in G} max(0, s(G, i) - pi_i) - mu,   s(G, i) = sum_{j in G} A[i][j] / (m - 1).

For each size ``m`` the groups are built member by member in index order, a whole level of partial
groups at a time (numpy). A partial group ``P`` whose last member is ``l`` still needs ``r = m - |P|``
members from ``{j > l}``; its completions satisfy

    d(G) <= sum_{i in P} max(0, (a_i(P) + top_r{A[i][j] : j > l}) / (m-1) - pi_i)
          + top_r over c > l of max(0, (a_c(P) + top_{r-1}{A[c][j] : j > l, j != c}) / (m-1) - pi_c) - mu

(``a_i(P) = sum_{j in P} A[i][j]``), so every partial group whose bound is below the threshold is cut.
"""

from __future__ import annotations

import time

import numpy as np

#: partial groups expanded per numpy batch (bounds the memory of one level)
BATCH = 4096


class TooManyGroups(Exception):
    """More groups reach the threshold than the caller's ``limit``."""


class PricingTimeout(Exception):
    """The deadline passed before the search finished."""


def _top_sums(a: np.ndarray) -> np.ndarray:
    """``top[i, s, r]`` = sum of the ``r`` largest ``A[i][j]`` over ``j >= s, j != i`` (-inf if fewer)."""
    n = len(a)
    top = np.full((n, n + 1, n + 1), -np.inf)
    top[:, :, 0] = 0.0
    for i in range(n):
        for s in range(n + 1):
            pool = [a[i, j] for j in range(s, n) if j != i]
            top[i, s, 1:len(pool) + 1] = np.cumsum(sorted(pool, reverse=True))
    return top


class GroupPricer:
    """Finds groups (size >= 2) with a high reduced cost for score matrix ``A`` (zero diagonal)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = np.asarray(a, dtype=float)
        self.n = len(self.a)
        self.top = _top_sums(self.a)

    def max_reduced_cost_bound(self, pi: np.ndarray, mu: float) -> float:
        """An upper bound on ``max_G d(G)`` without search: in a group of size ``m`` member ``i`` scores at
        most ``top_{m-1}(A[i]) / (m-1)`` (its ``m - 1`` best partners), so ``d(G)`` is at most the sum of
        the ``m`` largest ``max(0, top_{m-1}(A[i]) / (m-1) - pi_i)``, minus ``mu``; maximised over ``m``.
        Column generation uses it for a valid Lagrangian bound when exact pricing runs out of time."""
        pi = np.asarray(pi, dtype=float)
        best = -np.inf
        for m in range(2, self.n + 1):
            gains = np.sort(np.maximum(0.0, self.top[:, 0, m - 1] / (m - 1) - pi))
            best = max(best, float(gains[-m:].sum()) - mu)
        return best

    def groups_above(self, pi: np.ndarray, mu: float, threshold: float, *, adaptive: float = 0.0,
                     limit: int | None = None,
                     deadline: float | None = None) -> list[tuple[float, tuple[int, ...]]]:
        """Every group with ``d(G) >= threshold``, best first.

        ``adaptive > 0`` raises the threshold while searching to ``adaptive * (best d found so far)`` and
        to the ``limit``-th best ``d`` found so far: the maximum is still found exactly, with up to
        ``limit`` near-best groups, which is what column generation needs. Without ``adaptive`` the
        list is complete, and more than ``limit`` groups raise :class:`TooManyGroups`. Past
        ``deadline`` (``time.monotonic()``) it raises :class:`PricingTimeout`.
        """
        self._deadline = deadline
        self._pi, self._mu, self._adaptive = np.asarray(pi, dtype=float), float(mu), adaptive
        self._threshold, self._limit = threshold, limit
        self._found: list[tuple[float, tuple[int, ...]]] = []
        for m in range(2, self.n + 1):
            first = np.arange(self.n - m + 1)
            self._level(m, first[:, None], self.a[:, first].T.copy())
        self._found.sort(key=lambda item: -item[0])
        return [(d, g) for d, g in self._found if d >= self._threshold]

    def _level(self, m: int, members: np.ndarray, sums: np.ndarray) -> None:
        """Extend partial groups (rows of ``members``; ``sums[f, i] = a_i(P_f)``) towards size ``m``."""
        for lo in range(0, len(members), BATCH):
            if self._deadline is not None and time.monotonic() > self._deadline:
                raise PricingTimeout
            mem, s = members[lo:lo + BATCH], sums[lo:lo + BATCH]
            if mem.shape[1] == m:
                self._collect(m, mem, s)
                continue
            keep = self._bound(m, mem, s) >= self._threshold
            mem, s = mem[keep], s[keep]
            if len(mem) == 0:
                continue
            r = m - mem.shape[1]
            last = mem[:, -1]
            counts = self.n - r - last  # next member j in last+1 .. n-r leaves room for r-1 more
            parent = np.repeat(np.arange(len(mem)), counts)
            offsets = np.arange(len(parent)) - np.repeat(np.cumsum(counts) - counts, counts)
            nxt = last[parent] + 1 + offsets
            self._level(m, np.column_stack([mem[parent], nxt]), s[parent] + self.a[:, nxt].T)

    def _bound(self, m: int, mem: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Upper bound on ``d`` of every completion of each partial group (module docstring)."""
        r = m - mem.shape[1]
        start = mem[:, -1] + 1
        rows = np.arange(len(mem))[:, None]
        in_p = np.zeros(s.shape, dtype=bool)
        in_p[rows, mem] = True
        gain_p = np.maximum(0.0, (s + self.top[:, start, r].T) / (m - 1) - self._pi)
        gain_c = np.maximum(0.0, (s + self.top[:, start, r - 1].T) / (m - 1) - self._pi)
        gain_c[np.arange(self.n)[None, :] < start[:, None]] = 0.0
        best_c = -np.partition(-gain_c, r - 1, axis=1)[:, :r].sum(axis=1)
        return np.where(in_p, gain_p, 0.0).sum(axis=1) + best_c - self._mu

    def _collect(self, m: int, mem: np.ndarray, s: np.ndarray) -> None:
        scores = np.take_along_axis(s, mem, axis=1) / (m - 1)
        d = np.maximum(0.0, scores - self._pi[mem]).sum(axis=1) - self._mu
        hit = np.flatnonzero(d >= self._threshold)
        self._found += [(float(d[f]), tuple(int(t) for t in mem[f])) for f in hit]
        if self._adaptive and self._found:
            self._found.sort(key=lambda item: -item[0])
            if self._limit is not None:
                del self._found[self._limit:]
            kth = self._found[-1][0] if len(self._found) == self._limit else -np.inf
            self._threshold = max(self._threshold, self._adaptive * self._found[0][0], kth)
        if self._limit is not None and not self._adaptive and len(self._found) > self._limit:
            raise TooManyGroups


def greedy_groups(a: np.ndarray, pi: np.ndarray, mu: float, threshold: float,
                  limit: int) -> list[tuple[float, tuple[int, ...]]]:
    """Heuristic pricing: grow every pair greedily, one member at a time, by the member that gives the
    largest ``d`` at the next size; return up to ``limit`` distinct groups met with ``d > threshold``."""
    n = len(a)
    if n < 2:
        return []
    first, second = np.triu_indices(n, 1)
    mask = np.zeros((len(first), n), dtype=bool)
    mask[np.arange(len(first)), first] = mask[np.arange(len(first)), second] = True
    sums = a[:, first].T + a[:, second].T
    found: dict[tuple[int, ...], float] = {}
    for size in range(2, n + 1):
        d = np.where(mask, np.maximum(0.0, sums / (size - 1) - pi), 0.0).sum(axis=1) - mu
        for f in np.flatnonzero(d > threshold):
            found[tuple(np.flatnonzero(mask[f]).tolist())] = float(d[f])
        if size == n:
            break
        # d after adding candidate c (size + 1 members): members' gains with A[i][c], plus c's own gain
        grown = (sums[:, :, None] + a[None, :, :]) / size - pi[None, :, None]
        members_gain = np.where(mask[:, :, None], np.maximum(0.0, grown), 0.0).sum(axis=1)
        own_gain = np.maximum(0.0, sums / size - pi)
        score = np.where(mask, -np.inf, members_gain + own_gain)
        best = score.argmax(axis=1)
        rows = np.arange(len(mask))
        mask[rows, best] = True
        sums = sums + a[:, best].T
    ranked = sorted(((d, g) for g, d in found.items()), key=lambda item: -item[0])
    return ranked[:limit]
