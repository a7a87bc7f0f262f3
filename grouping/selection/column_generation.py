"""The ``bip`` solver for pairwise-affinity problems: column generation, then an integer master.

Master (facility location over a set ``Gamma`` of generated groups; ``s(G, i)`` as in
``grouping.candidates.affinity_groups``):

    max  sum_{G in Gamma} sum_{i in G} s(G, i) y_{G,i}
    s.t. sum_{G ∋ i} y_{G,i} = 1   (pi_i)    every task served once
         y_{G,i} <= x_G                       only by a chosen group containing it
         sum_{G full} x_G <= k     (nu)      k = floor(budget / network_cost) full-size groups

With half-size singletons (``AffinityProblem.half_singletons``: cost ``c / 2``, score 0) the budget
itself is a further row, in integer cost units (``w_G = 2`` for a full-size group, 1 for a half-size one):

         sum_G w_G x_G <= K        (mu)      K = floor(2 budget / network_cost)

The first row then only tightens the LP relaxation (without it the LP may buy ``K / 2`` full groups).
The price of a full-size group is ``nu + 2 mu`` (``nu`` alone without half-size singletons).

0. ``Gamma`` starts with the all-task group, every pair (up to ``ALL_PAIRS_TASKS`` tasks, else each
   task with its ``PAIR_PARTNERS`` best partners) and the groups of good partitions
   (``grouping.selection.partition_search``); the best partition is the integer master's start.
1. The LP relaxation is grown by pricing (``grouping.selection.pricing``: greedy growth of pairs, then
   local search from the generated groups of highest reduced cost, then the exact search) until no
   full-size group has a positive reduced cost ``d(G) = sum_{i in G} max(0, s(G, i) - pi_i) - price``.
   At every round ``z_RMP + k * max(0, D)`` is a valid upper bound (Lagrangian bound) for any
   ``D >= max_G d(G)`` over the full-size groups: the exact maximum when pricing finishes, else a
   search-free bound on it (the singletons that serve alone are all in ``Gamma``, so their reduced
   cost is at most 0); at convergence the bound equals the LP optimum ``z_LP``. When column
   generation stops before convergence, the bound is tightened from the last master LP by
   ``grouping.selection.pricing.lagrangian_bound`` (subgradient steps on the task duals and on
   multipliers coupling a group's members; every point it evaluates is a valid bound).
2. The integer master over ``Gamma`` (SCIP) gives the incumbent ``z_IP`` (never below the start).
3. Closing the gap: for any selection, ``value <= z_LP + sum_{G chosen} d(G)`` with the final duals, so
   a selection better than ``z_IP`` only uses groups with ``d(G) >= z_IP - z_LP``. Those are all
   generated (exact pricing with that threshold) and the integer master is solved again: its optimum
   is then proven optimal for the whole problem (reduced-cost fixing in the sense of column
   enumeration). Whenever a task may be served alone (``singletons="normalized"`` or half-size
   singletons) the singletons (score 0) are in ``Gamma`` from the start.

With a time limit ``T`` every phase reads one deadline: the starting partitions take up to
``START_SHARE * T``, column generation runs until ``CG_TIME_SHARE * T``, the Lagrangian bound of step 1
until ``BOUND_TIME_SHARE * T``, the integer masters until ``IP_TIME_SHARE * T`` and iterated local
search from the best partition uses what is left. The answer is the better of the integer master's
selection and that partition, with the best bound met on the way (never worse than
``sum_i max_j A[i][j]`` and the group-size bound of ``grouping.selection.size_bound``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from itertools import combinations

import highspy
import numpy as np
from ortools.linear_solver import pywraplp

from grouping.candidates import group_scores
from grouping.problem import AffinityProblem
from grouping.selection.budget import CostScale
from grouping.selection.mip import has_solution, new_highs, new_scip, solve_exact_by
from grouping.selection.partition_search import good_partitions, iterated_local_search, partition_value
from grouping.selection.pricing import (
    GroupPricer,
    PricingTimeout,
    TooManyGroups,
    greedy_groups,
    improved_groups,
    lagrangian_bound,
    reduced_costs,
)
from grouping.selection.result import RawSolution, Selected, settle_bound
from grouping.selection.size_bound import size_bound

#: groups added per pricing round (best reduced cost first)
COLUMNS_PER_ROUND = 60
#: generated groups (highest reduced cost first) that local-search pricing starts from
LOCAL_SEARCH_SEEDS = 30
#: a pricing round keeps groups with d >= ADAPTIVE * (best d), and always the best
ADAPTIVE = 0.3
#: most groups the gap-closing enumeration may add before optimality is left unproven
MAX_GAP_COLUMNS = 20_000
#: share of a time limit after which no further starting partition is searched
START_SHARE = 0.15
#: share of a time limit that column generation may use before the integer master must start (a
#: complete exact pricing pass, the proof, takes 14-18 s at 40 tasks and five groups)
CG_TIME_SHARE = 0.75
#: share of a time limit by which the Lagrangian bound (after unfinished column generation) must stop
BOUND_TIME_SHARE = 0.8
#: share of a time limit the integer masters may use; iterated local search has the rest
IP_TIME_SHARE = 0.85
#: up to this many tasks every pair starts in ``Gamma``; beyond, each task's best partners
ALL_PAIRS_TASKS = 60
#: best partners per task whose pairs start in ``Gamma`` beyond ``ALL_PAIRS_TASKS``
PAIR_PARTNERS = 4
#: a time-limited solve returns within ``time_limit * (1 + TIME_MARGIN_SHARE) + TIME_MARGIN_SECONDS``
TIME_MARGIN_SECONDS = 2.0
#: see ``TIME_MARGIN_SECONDS``
TIME_MARGIN_SHARE = 0.05
#: name of the method in ``RawSolution.proved_by``
METHOD = "column_generation"


class _Master:
    """The restricted master: an LP (HiGHS, warm-started from the last basis) over served columns and an
    integer program (SCIP) over groups.

    The LP holds columns ``(G, S)``, a group ``G`` serving the members ``S`` (score
    ``sum_{i in S} s(G, i)``, one row per task served, ``w[size(G)]`` in each limit row): the same
    relaxation as the ``y <= x`` rows (for one group, ``{0 <= y_i <= x}`` is the convex hull of
    ``x (1_S)``), with ``n + 2`` rows instead of one per member of every group. A priced group serves
    the members it helps (``s(G, i) > pi_i``). The integer master (:meth:`solve_ip`) is the facility
    location of the module docstring over the distinct groups. ``limits`` are the rows
    ``sum_G w[size(G)] x_G <= capacity`` (``k`` and, with half-size singletons, ``K``)."""

    def __init__(self, a: np.ndarray, size: Callable[[tuple[int, ...]], str],
                 limits: list[tuple[int, dict[str, int]]]) -> None:
        self.a, self.size, self.limits = a, size, limits
        n = len(a)
        self.lp = new_highs()
        none = np.array([], dtype=np.int32)
        self.lp.addRows(n, np.ones(n), np.ones(n), 0, none, none, np.array([]))
        for cap, _weight in limits:
            self.lp.addRow(-highspy.kHighsInf, float(cap), 0, none, np.array([]))
        self.lp.changeObjectiveSense(highspy.ObjSense.kMaximize)
        self.groups: list[tuple[int, ...]] = []
        self.known: set[tuple[int, ...]] = set()
        self.columns: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()

    def add(self, group: tuple[int, ...], pi: np.ndarray | None = None) -> None:
        """Add ``group`` (to the LP serving the members with ``s(G, i) > pi_i``, or all without ``pi``)."""
        if group not in self.known:
            self.known.add(group)
            self.groups.append(group)
        scores = group_scores(self.a, group)
        served = tuple(i for i, v in zip(group, scores, strict=True) if pi is None or v > pi[i])
        if not served or (group, served) in self.columns:
            return
        self.columns.add((group, served))
        size = self.size(group)
        weights = [(len(self.a) + r, float(weight[size])) for r, (_cap, weight) in enumerate(self.limits)
                   if weight[size]]
        rows = np.array(list(served) + [r for r, _w in weights], dtype=np.int32)
        values = np.array([1.0] * len(served) + [w for _r, w in weights])
        value = float(sum(v for i, v in zip(group, scores, strict=True) if i in served))
        self.lp.addCol(value, 0.0, highspy.kHighsInf, len(rows), rows, values)

    def solve_lp(self, deadline: float | None) -> tuple[float, np.ndarray, float] | None:
        """``(z_RMP, pi, price)``: ``price`` is the limits' dual price of one full-size group; ``None``
        when ``deadline`` stops the LP before its optimum (the master holds the all-tasks group and is
        always feasible)."""
        if deadline is not None:
            self.lp.setOptionValue("time_limit", max(0.001, deadline - time.monotonic()))
        self.lp.run()
        if self.lp.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        duals = np.asarray(self.lp.getSolution().row_dual)
        n = len(self.a)
        price = sum(max(0.0, float(duals[n + r])) * weight["full"]
                    for r, (_cap, weight) in enumerate(self.limits))
        return float(self.lp.getInfo().objective_function_value), duals[:n].copy(), price

    def solve_ip(self, deadline: float | None,
                 hint: list[tuple[int, ...]]) -> tuple[bool, float, list[tuple[int, ...]]]:
        """Integer master over all generated groups, started from the selection ``hint`` (generated
        groups), stopped at ``deadline`` (``time.monotonic()``; building the model counts):
        ``(proven optimal, value, chosen groups)``."""
        ip = new_scip(None)
        x = [ip.BoolVar("") for _ in self.groups]
        cover = [ip.Constraint(1.0, 1.0) for _ in range(len(self.a))]
        rows = [ip.Constraint(-ip.infinity(), float(cap)) for cap, _w in self.limits]
        objective = ip.Objective()
        objective.SetMaximization()
        server = _servers(self.a, hint)
        start_vars, start_values = [], []
        for g, group in enumerate(self.groups):
            if _passed(deadline):
                return False, -np.inf, []
            start_vars.append(x[g])
            start_values.append(float(group in hint))
            for row, (_cap, weight) in zip(rows, self.limits, strict=True):
                row.SetCoefficient(x[g], float(weight[self.size(group)]))
            for i, score in zip(group, group_scores(self.a, group), strict=True):
                y = ip.BoolVar("")
                link = ip.Constraint(-ip.infinity(), 0.0)
                link.SetCoefficient(y, 1.0)
                link.SetCoefficient(x[g], -1.0)
                cover[i].SetCoefficient(y, 1.0)
                objective.SetCoefficient(y, float(score))
                start_vars.append(y)
                start_values.append(float(server[i] == group))
        ip.SetHint(start_vars, start_values)
        status = solve_exact_by(ip, deadline)
        if not has_solution(status):
            return False, -np.inf, []
        chosen = [self.groups[g] for g in range(len(self.groups)) if x[g].solution_value() > 0.5]
        return status == pywraplp.Solver.OPTIMAL, ip.Objective().Value(), chosen


def _passed(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def _servers(a: np.ndarray, groups: list[tuple[int, ...]]) -> dict[int, tuple[int, ...]]:
    """Task -> the group among ``groups`` that scores it highest (every task is in one of them)."""
    scores = {g: dict(zip(g, group_scores(a, g), strict=True)) for g in groups}
    return {i: max((g for g in groups if i in g), key=lambda g: scores[g][i]) for i in range(len(a))}


def _selection(problem: AffinityProblem, a: np.ndarray, groups: list[tuple[int, ...]]) -> list[Selected]:
    """Serve each task from the chosen group that scores it highest (min-sense values)."""
    serves: dict[tuple[int, ...], dict[int, float]] = {g: {} for g in groups}
    for i, g in _servers(a, groups).items():
        serves[g][i] = -float(group_scores(a, g)[g.index(i)])
    sizes = {g: problem.network_size(g) for g in groups}
    return [Selected(g, sizes[g], problem.network_costs[sizes[g]], serves[g]) for g in groups]


def _search_free_bound(problem: AffinityProblem, a: np.ndarray, units: dict[str, int],
                       budget_units: int) -> float:
    """The smaller of ``sum_i max_j A[i][j]`` (and 0 when a task may be served alone: no group scores
    a task higher) and the group-size bound of ``grouping.selection.size_bound``."""
    n = len(a)
    best = np.where(np.eye(n, dtype=bool), -np.inf, a).max(axis=1) if n > 1 else np.zeros(n)
    trivial = float(np.maximum(best, 0.0).sum() if problem.serves_alone else best.sum())
    alone = units["half"] / units["full"] if problem.half_singletons else None
    if problem.serves_alone and alone is None:
        alone = 1.0
    return min(trivial, size_bound(a, budget_units / units["full"], alone))


def _starting_pairs(a: np.ndarray) -> list[tuple[int, int]]:
    """Every pair up to ``ALL_PAIRS_TASKS`` tasks, else each task with its ``PAIR_PARTNERS`` best partners
    (by ``A[i][j] + A[j][i]``)."""
    n = len(a)
    if n <= ALL_PAIRS_TASKS:
        return list(combinations(range(n), 2))
    both = a + a.T
    np.fill_diagonal(both, -np.inf)
    partners = np.argsort(-both, axis=1)[:, :PAIR_PARTNERS]
    return sorted({(min(i, int(j)), max(i, int(j))) for i in range(n) for j in partners[i]})


def _at(started: float, time_limit: float | None, share: float) -> float | None:
    return None if time_limit is None else started + share * time_limit


def solve_affinity(problem: AffinityProblem, scale: CostScale, budget_units: int,
                   time_limit: float | None) -> RawSolution:
    """Optimal selection within ``budget_units`` (``scale``'s integer units, at least the cheapest
    covering), as in the module docstring.

    With a time limit every phase stops at its share of it (module docstring) and the solve returns
    within ``TIME_MARGIN_SECONDS`` plus ``TIME_MARGIN_SHARE`` of the limit after it (what runs past it
    is building the answer and one LP or integer-master step that was told the remaining time); the
    reported bound is then the best Lagrangian bound
    (status ``feasible``), never worse than the search-free bounds (``sum_i max_j A[i][j]`` and
    ``grouping.selection.size_bound``) and never on the wrong side of the objective. ``proved_by``
    is ``METHOD``.
    """
    started = time.monotonic()
    deadline = _at(started, time_limit, 1.0)
    a = problem.score_matrix()
    n = len(a)
    tol = 1e-9 * max(1.0, float(np.abs(a).max()))
    units = {size: scale.units(cost) for size, cost in problem.network_costs.items()}
    k = budget_units // units["full"]
    limits = [(k, {"full": 1, "half": 0})]
    if problem.half_singletons:
        step = math.gcd(*units.values())
        limits.append((budget_units // step, {size: u // step for size, u in units.items()}))
    master = _Master(a, problem.network_size, limits)
    master.add(tuple(range(n)))
    for group in _starting_pairs(a):
        master.add(group)
    if problem.serves_alone:
        for i in range(n):
            master.add((i,))
    partitions = good_partitions(a, k, problem.min_group_size, deadline=_at(started, time_limit, START_SHARE))
    for partition in partitions:
        for group in partition:
            master.add(group)
    incumbent = partitions[0] if partitions else [tuple(range(n))]
    pricer = GroupPricer(a)
    search_free = _search_free_bound(problem, a, units, budget_units)
    bound, converged, last_lp = _generate_columns(master, pricer, k, search_free, tol,
                                                  _at(started, time_limit, CG_TIME_SHARE))
    start_value = partition_value(a, incumbent)
    if not converged and last_lp is not None:
        z, pi, price = last_lp
        bound = min(bound, lagrangian_bound(a, z, pi, price, k, start_value, alone=problem.serves_alone,
                                            deadline=_at(started, time_limit, BOUND_TIME_SHARE)))
    ip_deadline = _at(started, time_limit, IP_TIME_SHARE)
    if bound - start_value <= tol * n:  # the best starting partition meets the bound: it is optimal
        proven, value, chosen = True, start_value, incumbent
    else:
        proven, value, chosen = master.solve_ip(ip_deadline, incumbent)
    if converged and last_lp is not None and bound - value > tol * n and not _passed(ip_deadline):
        _z, pi, price = last_lp
        try:
            for _d, group in pricer.groups_above(pi, price, value - bound - tol, limit=MAX_GAP_COLUMNS,
                                                 deadline=ip_deadline):
                master.add(group)
        except (TooManyGroups, PricingTimeout):
            pass
        else:
            proven, value, chosen = master.solve_ip(ip_deadline, chosen or incumbent)
            bound = value if proven else bound
    if deadline is not None and len(incumbent) > 1 and bound - value > tol * n:
        incumbent = iterated_local_search(a, incumbent, problem.min_group_size, deadline)
    start_value = partition_value(a, incumbent)
    if not chosen or start_value > value + tol * n:  # the partition search beat the integer master
        chosen, proven, value = incumbent, False, start_value
    optimal = bound - value <= tol * n
    raw = RawSolution("optimal" if optimal else "feasible", _selection(problem, a, chosen),
                      -value if optimal else -bound, METHOD)
    return settle_bound(raw, -search_free)


def _heuristic_columns(master: _Master, pi: np.ndarray, price: float, threshold: float,
                      deadline: float | None) -> list[tuple[float, tuple[int, ...]]]:
    """Up to ``COLUMNS_PER_ROUND`` groups with ``d > threshold`` at duals ``(pi, price)``, best first, by
    greedy growth of pairs, else (when that finds none) by local search from the ``LOCAL_SEARCH_SEEDS``
    generated groups closest to a positive reduced cost."""
    a = master.a
    found = greedy_groups(a, pi, price, threshold, COLUMNS_PER_ROUND, deadline=deadline)
    if found:
        return found
    pool = [g for g in master.groups if len(g) >= 2]
    seeds = [pool[g] for g in np.argsort(-reduced_costs(a, pi, price, pool))[:LOCAL_SEARCH_SEEDS]]
    return improved_groups(a, pi, price, seeds, threshold, COLUMNS_PER_ROUND, deadline=deadline)


def _generate_columns(master: _Master, pricer: GroupPricer, k: int, bound: float, tol: float,
                      deadline: float | None) -> tuple[float, bool, tuple[float, np.ndarray, float] | None]:
    """Grow the master LP by pricing until no group has a positive reduced cost or ``deadline``;
    ``(best Lagrangian bound, converged, last LP (z_RMP, pi, price) or None)`` (module docstring,
    step 1)."""
    last_lp = None
    try:
        while not _passed(deadline):
            lp = master.solve_lp(deadline)
            if lp is None:
                break
            z, pi, price = lp
            last_lp = lp
            bound = min(bound, z + k * max(0.0, pricer.max_reduced_cost_bound(pi, price)))
            found = _heuristic_columns(master, pi, price, tol, deadline)
            if not found:  # exact pricing: proves convergence or finds what the heuristic missed
                found = pricer.groups_above(pi, price, tol, adaptive=ADAPTIVE, limit=COLUMNS_PER_ROUND,
                                            deadline=deadline)
                bound = min(bound, z + k * max(0.0, found[0][0] if found else 0.0))
                if not found:
                    return bound, True, last_lp
            for _d, group in found:
                master.add(group, pi)
    except PricingTimeout:
        pass
    return bound, False, last_lp
