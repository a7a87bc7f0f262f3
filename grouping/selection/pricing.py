"""Exact pricing of pairwise-affinity groups for column generation (no 2^n enumeration).

With the master's duals ``pi_i`` (task ``i`` served once) and ``mu >= 0`` (the budget's price of one
full-size group), the reduced cost of a group ``G`` of size ``m >= 2`` — serving exactly the members it
helps — is

    d(G) = sum_{i in G} max(0, s(G, i) - pi_i) - mu,   s(G, i) = sum_{j in G} A[i][j] / (m - 1).

For each size ``m`` the groups are built member by member, depth first
(:mod:`grouping.selection.group_search`, compiled), in a fixed order of the tasks: increasing
``pi_i``, so the tasks that gain most from any group come first and the candidates left to a partial
group gain little (measured: a complete search at 40 tasks and five groups about three times faster
than in index order). Below, indices are positions in
that order. A partial group ``P`` whose last member is ``l`` still needs ``r = m - |P|`` members ``R``
from ``U = {j > l}``. With ``b_i = a_i(P) / (m-1) - pi_i`` (``a_i(P) = sum_{j in P}
A[i][j]``) and ``t_i(R) = sum_{c in R} A[i][c] / (m-1)``, member ``i in P`` scores ``max(0, b_i + t_i)``
with ``t_i`` between ``lo_i = bot_r{A[i][j] : j in U} / (m-1)`` and ``hi_i = top_r{...} / (m-1)``;
``max(0, .)`` is convex, so on that interval it lies below its chord ``alpha_i + sigma_i t_i``
(slope 1 when ``b_i + lo_i >= 0``, 0 when ``b_i + hi_i <= 0``, else ``(b_i + hi_i) / (hi_i - lo_i)``
through ``(lo_i, 0)``). A completion ``R`` therefore has

    d(G) <= sum_{i in P} alpha_i + top_r over c in U of w_c - mu,
    w_c = sum_{i in P} sigma_i A[i][c] / (m-1)
          + max(0, (a_c(P) + top_{r-1}{A[c][j] : j in U, j != c}) / (m-1) - pi_c)

(the members' chords are linear in ``R``, so all of them see the same completion; only the
completion's own members pick their partners independently), and every partial group whose bound is
below the threshold is cut.
"""

from __future__ import annotations

import math
import time

import numpy as np

from grouping.selection import group_search

#: one call of the compiled search visits ``SEARCH_WORK // n^2`` nodes (a node costs up to about ``n^2``
#: operations) before the deadline is read again: about 0.1 s at any number of tasks
SEARCH_WORK = 480_000_000
#: groups the compiled search may find before it returns them
SEARCH_BUFFER = 1024
#: most tasks for which :class:`GroupPricer` searches exactly (each search builds two ``n^3`` tables, 8 MB
#: each at 100 tasks)
EXACT_PRICING_TASKS = 100
#: most doubles one step of :func:`greedy_groups` holds at once (seeds x members x candidates)
GREEDY_CELLS = 1 << 21
#: best partners per task that seed :func:`greedy_groups`
GREEDY_PARTNERS = 3
#: :func:`greedy_groups` stops a batch of seeds once none has raised its best ``d`` for this many sizes
GREEDY_PATIENCE = 6
#: most tasks for which :func:`lagrangian_bound` runs (it holds about ten ``n^3`` tables, 8 MB each at
#: 100 tasks)
LAGRANGIAN_TASKS = 100
#: most subgradient steps of :func:`lagrangian_bound`
LAGRANGIAN_STEPS = 600
#: steps without a better value after which :func:`lagrangian_bound` halves a step length
LAGRANGIAN_PATIENCE = 5
#: :func:`lagrangian_bound` moves the coupling of the sizes whose bound is at least this share of the
#: largest (only the largest counts)
LAGRANGIAN_ACTIVE = 0.5


class TooManyGroups(Exception):
    """More groups reach the threshold than the caller's ``limit``."""


class PricingTimeout(Exception):
    """The deadline passed before the search finished."""


def _top_sums(a: np.ndarray, starts: int) -> np.ndarray:
    """``top[i, s, r]`` = sum of the ``r`` largest ``A[i][j]`` over ``j >= s, j != i`` (-inf if fewer),
    for ``s < starts`` (``starts = 1`` keeps only ``s = 0``: ``n^2`` numbers instead of ``n^3``)."""
    n = len(a)
    masked = np.asarray(a, dtype=float).copy()
    np.fill_diagonal(masked, -np.inf)
    top = np.full((n, starts, n + 1), -np.inf)
    top[:, :, 0] = 0.0
    for s in range(min(starts, n)):
        top[:, s, 1:n - s + 1] = np.cumsum(-np.sort(-masked[:, s:], axis=1), axis=1)
    return top


class GroupPricer:
    """Finds groups (size >= 2) with a high reduced cost for score matrix ``A`` (zero diagonal).

    Exact search (:meth:`groups_above`) is offered up to ``EXACT_PRICING_TASKS`` tasks (``exact``);
    the search-free :meth:`max_reduced_cost_bound` at any size."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = np.asarray(a, dtype=float)
        self.n = len(self.a)
        self.exact = self.n <= EXACT_PRICING_TASKS
        self.top = _top_sums(self.a, 1)

    def max_reduced_cost_bound(self, pi: np.ndarray, mu: float) -> float:
        """An upper bound on ``max_G d(G)`` without search: in a group of size ``m`` member ``i`` scores at
        most ``top_{m-1}(A[i]) / (m-1)`` (its ``m - 1`` best partners), so ``d(G)`` is at most the sum of
        the ``m`` largest ``max(0, top_{m-1}(A[i]) / (m-1) - pi_i)``, minus ``mu``; maximised over ``m``.
        Column generation uses it for a valid Lagrangian bound when exact pricing runs out of time."""
        pi = np.asarray(pi, dtype=float)
        sizes = np.arange(2, self.n + 1)
        gains = -np.sort(-np.maximum(0.0, self.top[:, 0, sizes - 1] / (sizes - 1) - pi[:, None]), axis=0)
        best_m = np.cumsum(gains, axis=0)[sizes - 1, np.arange(len(sizes))]  # the m largest, size m
        return float(best_m.max(initial=-np.inf)) - mu

    def groups_above(self, pi: np.ndarray, mu: float, threshold: float, *, adaptive: float = 0.0,
                     limit: int | None = None, deadline: float | None = None,
                     sizes: range | None = None) -> list[tuple[float, tuple[int, ...]]]:
        """Every group with ``d(G) >= threshold``, best first (among the group ``sizes``, default all).

        ``adaptive > 0`` raises the threshold while searching to ``adaptive * (best d found so far)`` and
        to the ``limit``-th best ``d`` found so far: the maximum is still found exactly, with up to
        ``limit`` near-best groups, which is what column generation needs. Without ``adaptive`` the
        list is complete, and more than ``limit`` groups raise :class:`TooManyGroups`. Past
        ``deadline`` (``time.monotonic()``) it raises :class:`PricingTimeout`; so does a pricer
        without the exact search (``exact`` false).
        """
        if not self.exact:
            raise PricingTimeout
        order = np.argsort(pi, kind="stable")  # module docstring: the search's task order
        pi = np.asarray(pi, dtype=float)[order]
        a = np.ascontiguousarray(self.a[np.ix_(order, order)])
        top, bottom = _top_sums(a, self.n + 1), -_top_sums(-a, self.n + 1)  # the r smallest for bottom
        found: list[tuple[float, tuple[int, ...]]] = []
        for m in sizes or range(2, self.n + 1):
            run = group_search.new_state(self.n, m, SEARCH_BUFFER)
            while not run["state"][group_search.DONE]:
                if deadline is not None and time.monotonic() > deadline:
                    raise PricingTimeout
                threshold = group_search.search(a, pi, float(mu), top, bottom, m, threshold, adaptive,
                                                run["state"], run["sums"], run["members"], run["next"],
                                                run["found_d"], run["found"],
                                                max(1, SEARCH_WORK // self.n ** 2))
                count = int(run["state"][group_search.FOUND])
                if not count:
                    continue
                run["state"][group_search.FOUND] = 0
                found += [(float(run["found_d"][f]), tuple(sorted(int(t) for t in order[run["found"][f]])))
                          for f in range(count)]
                if limit is not None and adaptive:  # keep the limit best; the limit-th raises the threshold
                    found.sort(key=lambda item: -item[0])
                    del found[limit:]
                    if len(found) == limit:
                        threshold = max(threshold, found[-1][0])
                elif limit is not None and len(found) > limit:
                    raise TooManyGroups
        found.sort(key=lambda item: -item[0])
        return [(d, g) for d, g in found if d >= threshold]


def greedy_groups(a: np.ndarray, pi: np.ndarray, mu: float, threshold: float, limit: int, *,
                  deadline: float | None = None) -> list[tuple[float, tuple[int, ...]]]:
    """Heuristic pricing: grow pairs greedily, one member at a time, by the member that gives the largest
    ``d`` at the next size; return up to ``limit`` distinct groups met with ``d > threshold``, best first.

    The seeds are each task with its ``GREEDY_PARTNERS`` best partners (by the pair's ``d``), grown in
    batches of at most ``GREEDY_CELLS`` doubles (seeds x members x candidates) until every seed holds all
    tasks, no seed of the batch has raised its best ``d`` for ``GREEDY_PATIENCE`` sizes, or ``deadline``
    (``time.monotonic()``) passes; then the groups met so far are returned."""
    a = np.asarray(a, dtype=float)
    pi = np.asarray(pi, dtype=float)
    n = len(a)
    if n < 2:
        return []
    gain = np.maximum(0.0, a - pi[:, None])
    pair = gain + gain.T
    np.fill_diagonal(pair, -np.inf)
    partners = np.argsort(-pair, axis=1)[:, :min(GREEDY_PARTNERS, n - 1)]
    seeds = np.unique(np.sort(np.column_stack([np.repeat(np.arange(n), partners.shape[1]),
                                               partners.ravel()]), axis=1), axis=0)
    batch = max(1, GREEDY_CELLS // (n * n))
    found: dict[tuple[int, ...], float] = {}
    for lo in range(0, len(seeds), batch):
        if deadline is not None and time.monotonic() > deadline:
            break
        members = seeds[lo:lo + batch]
        rows = np.arange(len(members))
        inside = np.zeros((len(members), n), dtype=bool)
        inside[rows[:, None], members] = True
        sums = a[:, members[:, 0]].T + a[:, members[:, 1]].T  # sums[s, i] = sum_{j in G_s} A[i][j]
        best_d, improved = np.full(len(members), -np.inf), np.full(len(members), 2)
        for size in range(2, n + 1):
            if deadline is not None and time.monotonic() > deadline:
                break
            scores = np.take_along_axis(sums, members, axis=1) / (size - 1) - pi[members]
            d = np.maximum(0.0, scores).sum(axis=1) - mu
            for f in np.flatnonzero(d > threshold):
                found[tuple(sorted(members[f].tolist()))] = float(d[f])
            improved = np.where(d > best_d, size, improved)
            best_d = np.maximum(best_d, d)
            if size == n or (size - improved).min() >= GREEDY_PATIENCE:
                break
            # d after adding candidate c: the members' gains with A[i][c], plus c's own gain
            grown = (np.take_along_axis(sums, members, axis=1)[:, :, None] + a[members]) / size
            members_gain = np.maximum(0.0, grown - pi[members][:, :, None]).sum(axis=1)
            score = np.where(inside, -np.inf, members_gain + np.maximum(0.0, sums / size - pi))
            best = score.argmax(axis=1)
            inside[rows, best] = True
            members = np.column_stack([members, best])
            sums = sums + a[:, best].T
    ranked = sorted(((d, g) for g, d in found.items()), key=lambda item: -item[0])
    return ranked[:limit]


def reduced_costs(a: np.ndarray, pi: np.ndarray, mu: float, groups: list[tuple[int, ...]]) -> np.ndarray:
    """``d(G)`` (module docstring) of each group of two or more tasks in ``groups``."""
    a = np.asarray(a, dtype=float)
    inside = np.zeros((len(groups), len(a)))
    for g, group in enumerate(groups):
        inside[g, list(group)] = 1.0
    size = inside.sum(axis=1, keepdims=True)
    scores = inside @ a.T / np.maximum(size - 1.0, 1.0) - np.asarray(pi, dtype=float)
    return (np.maximum(0.0, scores) * inside).sum(axis=1) - mu


def improved_groups(a: np.ndarray, pi: np.ndarray, mu: float, seeds: list[tuple[int, ...]], threshold: float,
                    limit: int, *, deadline: float | None = None) -> list[tuple[float, tuple[int, ...]]]:
    """Heuristic pricing by local search: from each seed group, take the best of all moves that add one
    task, drop one member (down to two) or swap a member for a task outside, while it raises ``d``
    (module docstring); return up to ``limit`` distinct end groups with ``d > threshold``, best first.

    Column generation calls it with the generated groups of highest ``d`` when :func:`greedy_groups`
    finds nothing: at 40 tasks and three groups it found a column in 19 of 22 such rounds, each of which
    would otherwise have needed an exact pass."""
    a = np.asarray(a, dtype=float)
    pi = np.asarray(pi, dtype=float)
    n = len(a)
    found: dict[tuple[int, ...], float] = {}
    for seed in seeds:
        if deadline is not None and time.monotonic() > deadline:
            break
        inside = np.zeros(n, dtype=bool)
        inside[list(seed)] = True
        while True:
            g, out = np.flatnonzero(inside), np.flatnonzero(~inside)
            m, sums = len(g), a[:, inside].sum(axis=1)
            current = float(np.maximum(0.0, sums[g] / (m - 1) - pi[g]).sum() - mu)
            moves: list[tuple[float, list[int], list[int]]] = []
            if len(out):  # add c: members gain A[i][c], c scores its sum over the group
                grown = (sums[g][:, None] + a[np.ix_(g, out)]) / m - pi[g][:, None]
                value = np.maximum(0.0, grown).sum(axis=0) + np.maximum(0.0, sums[out] / m - pi[out]) - mu
                c = int(value.argmax())
                moves.append((float(value[c]), [int(out[c])], []))
            within = a[np.ix_(g, g)]
            if m > 2:  # drop member r: the others lose A[i][r]
                gain = np.maximum(0.0, (sums[g][:, None] - within) / (m - 2) - pi[g][:, None])
                np.fill_diagonal(gain, 0.0)
                value = gain.sum(axis=0) - mu
                r = int(value.argmax())
                moves.append((float(value[r]), [], [int(g[r])]))
            if len(out):  # swap member r for c: gain[i, r, c] of the members i that stay
                moved = sums[g][:, None, None] - within[:, :, None] + a[np.ix_(g, out)][:, None, :]
                gain = np.maximum(0.0, moved / (m - 1) - pi[g][:, None, None])
                gain[np.arange(m), np.arange(m), :] = 0.0
                own = (sums[out][None, :] - a[np.ix_(out, g)].T) / (m - 1) - pi[out][None, :]
                value = gain.sum(axis=0) + np.maximum(0.0, own) - mu
                r, c = np.unravel_index(int(value.argmax()), value.shape)
                moves.append((float(value[r, c]), [int(out[c])], [int(g[r])]))
            best = max(moves, key=lambda move: move[0], default=None)
            if best is None or best[0] <= current + 1e-12:
                break
            inside[best[1]], inside[best[2]] = True, False
        if current > threshold:
            found[tuple(int(i) for i in np.flatnonzero(inside))] = current
    ranked = sorted(((d, g) for g, d in found.items()), key=lambda item: -item[0])
    return ranked[:limit]


def lagrangian_bound(a: np.ndarray, z: float, pi: np.ndarray, mu: float, k: int, target: float, *,
                     alone: bool, deadline: float | None) -> float:
    """An upper bound on the selection's value from the master LP's optimum ``z`` at duals ``(pi, mu)``,
    improved by subgradient steps on the task duals and on multipliers that couple a group's members.

    For any task duals ``p`` (``z + sum_i (p_i - pi_i)`` is the dual objective with ``pi`` replaced by
    ``p``; ``mu >= 0`` stays), a selection of at most ``k`` groups of ``>= 2`` tasks serving disjoint
    sets ``S_G`` that cover the tasks, plus tasks served alone (score 0, only when ``alone``), has

        value <= z + sum_i (p_i - pi_i) + k max(0, max_m D_m) + [alone] sum_i max(0, -p_i),

    ``D_m >= max_{|G| = m} d_p(G)`` with ``d_p`` the reduced cost of the module docstring at ``p``
    (each group's ``sum_{i in S_G} (s(G, i) - p_i) - mu`` is at most ``d_p(G)``, and a task alone adds
    ``-p_i``). ``D_m`` is a Lagrangian relaxation: with ``y_ij = 1`` when member ``i`` has ``j`` among
    its ``m - 1`` partners, a group has ``y_ij = y_ji``; relaxing that with an antisymmetric ``E``
    (``sum_ij E_ij y_ij = 0`` whenever ``y`` is symmetric), every member chooses its own partners:

        D_m(E) = (sum of the m largest v_i) - mu,
        v_i = max( top_{m-1}{A[i][j] / (m-1) + E_ij : j != i} - p_i,  top_{m-1}{E_ij : j != i} ),

    (``max(0, s - p_i) + E(T) = max(s - p_i + E(T), E(T))``, then each case at its best ``T``), which
    is at least ``max_{|G| = m} d_p(G)`` for every ``E`` (``E = 0`` gives
    :meth:`GroupPricer.max_reduced_cost_bound`). Every evaluated right-hand side is a valid bound and
    the smallest one is returned. ``E`` (per size) moves along ``y - y^T`` and ``p`` along the
    subgradient of the right-hand side, with Polyak steps towards 0 (``D_m``) and ``target`` (a value
    reached, e.g. the incumbent's), each halved after ``LAGRANGIAN_PATIENCE`` steps without a better
    value; it stops after ``LAGRANGIAN_STEPS`` steps or at ``deadline`` (``time.monotonic()``). Over
    ``LAGRANGIAN_TASKS`` tasks it returns ``inf`` (no bound).
    """
    a = np.asarray(a, dtype=float)
    n = len(a)
    p = np.asarray(pi, dtype=float).copy()
    sizes = np.arange(2, n + 1)
    if n > LAGRANGIAN_TASKS:
        return math.inf
    if n < 2:
        return z + (float(np.maximum(0.0, -p).sum()) if alone else 0.0)
    scaled = a[None] / (sizes - 1)[:, None, None]
    coupling = np.zeros((len(sizes), n, n))
    off_diagonal = ~np.eye(n, dtype=bool)[None]
    partners = np.arange(n)[None, None] < (sizes - 1)[:, None, None]  # the m - 1 best of a sorted row
    members = np.arange(n)[None] < sizes[:, None]  # the m best of a sorted column
    served_order = np.zeros(coupling.shape, dtype=np.intp)
    idle_order = np.zeros(coupling.shape, dtype=np.intp)
    served_top, idle_top = np.zeros((len(sizes), n)), np.zeros((len(sizes), n))
    size_step, size_stall, size_best = np.ones(len(sizes)), np.zeros(len(sizes)), np.full(len(sizes), np.inf)
    dual_step, dual_stall, best = 1.0, 0, np.inf
    changed = np.arange(len(sizes))
    for _ in range(LAGRANGIAN_STEPS):
        # the rows' best partners depend on E only: re-sorted for the sizes whose E moved
        served = np.where(off_diagonal, scaled[changed] + coupling[changed], -np.inf)
        idle = np.where(off_diagonal, coupling[changed], -np.inf)
        served_order[changed], idle_order[changed] = np.argsort(-served, axis=2), np.argsort(-idle, axis=2)
        chosen = partners[changed]
        served_top[changed] = np.where(chosen, np.take_along_axis(served, served_order[changed], axis=2),
                                       0.0).sum(axis=2)
        idle_top[changed] = np.where(chosen, np.take_along_axis(idle, idle_order[changed], axis=2),
                                     0.0).sum(axis=2)
        served_v = served_top - p
        v = np.maximum(served_v, idle_top)
        member_order = np.argsort(-v, axis=1)
        d = np.where(members, np.take_along_axis(v, member_order, axis=1), 0.0).sum(axis=1) - mu
        worst = int(d.argmax())
        lone = np.maximum(0.0, -p) if alone else np.zeros(n)
        value = z + float((p - pi).sum()) + k * max(0.0, float(d[worst])) + float(lone.sum())
        if value < best - 1e-12:
            best, dual_stall = value, 0
        else:
            dual_stall += 1
        size_stall = np.where(d < size_best - 1e-12, 0, size_stall + 1)
        size_best = np.minimum(size_best, d)
        if dual_stall >= LAGRANGIAN_PATIENCE:
            dual_step, dual_stall = dual_step / 2, 0
        size_step = np.where(size_stall >= LAGRANGIAN_PATIENCE, size_step / 2, size_step)
        size_stall = np.where(size_stall >= LAGRANGIAN_PATIENCE, 0, size_stall)
        if deadline is not None and time.monotonic() > deadline:
            break
        inside = np.zeros((len(sizes), n), dtype=bool)
        np.put_along_axis(inside, member_order, members, axis=1)
        changed = np.flatnonzero((d > 0) & (d >= LAGRANGIAN_ACTIVE * d[worst]))
        y = np.zeros((len(changed), n, n))
        np.put_along_axis(y, np.where((served_v[changed] >= idle_top[changed])[:, :, None],
                                      served_order[changed], idle_order[changed]), partners[changed], axis=2)
        y *= inside[changed][:, :, None]
        g = y - y.transpose(0, 2, 1)
        norm = 0.5 * (g * g).sum(axis=(1, 2))
        length = np.where(norm > 0, size_step[changed] * d[changed] / np.where(norm > 0, norm, 1.0), 0.0)
        coupling[changed] -= length[:, None, None] * g
        grad = 1.0 - (alone * (p < 0))
        if d[worst] > 0:
            grad = grad - k * (inside[worst] & (served_v[worst] >= idle_top[worst]))
        p -= dual_step * max(0.0, value - target) / max(float(grad @ grad), 1e-12) * grad
    return best
