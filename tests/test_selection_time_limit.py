"""``time_limit`` is honoured on an instance too large to finish: the solver stops soon after it and
returns a valid selection (status ``feasible``) with a proven bound no worse than its objective.

"Soon" is measured in CPU seconds of this process, not wall-clock time: the solvers are single
threaded, so a busy machine stretches the wall clock but not the CPU time a solve uses, and a
solver that ignored its limit (branch and bound used to go on for minutes) still fails."""

import math
import time

import numpy as np
import pytest

from grouping.problem import parse_problem
from grouping.selection import solve


def hard_problem(n_tasks=12, n_networks=1500, seed=0):
    rng = np.random.default_rng(seed)
    tasks = [f"t{i}" for i in range(n_tasks)]
    networks, seen = [], set()
    while len(networks) < n_networks:
        trains = sorted(rng.choice(n_tasks, size=int(rng.integers(2, n_tasks + 1)), replace=False))
        cost = float(rng.choice([0.5, 1.0]))
        if (tuple(trains), cost) in seen:
            continue
        seen.add((tuple(trains), cost))
        loss = {tasks[t]: float(rng.uniform(0.5, 1.0)) for t in trains}
        networks.append({"tasks": [tasks[t] for t in trains], "cost": cost, "loss": loss})
    return parse_problem({"tasks": tasks, "objective": "min_loss", "networks": networks})


@pytest.mark.parametrize("solver", ["branch_and_bound", "bip"])
def test_solver_stops_at_the_time_limit_with_a_valid_selection(solver):
    problem = hard_problem()
    cpu = time.process_time()
    sol = solve(problem, 5, solver=solver, time_limit=0.5)
    cpu = time.process_time() - cpu
    assert cpu < 30.0, cpu  # the limit is wall-clock; the CPU a solve may spend past it is bounded
    assert sol.status in ("feasible", "optimal")
    assert sum(n.cost for n in sol.networks) <= 5 + 1e-9
    assert sorted(t for n in sol.networks for t in n.serves) == sorted(problem.tasks)
    # the contract: a returned selection always carries a proven (finite) bound on the right side
    assert sol.bound is not None and math.isfinite(sol.bound), sol.bound
    assert sol.gap is not None and sol.gap >= 0
    assert sol.bound <= sol.objective + 1e-9 * max(1.0, abs(sol.objective))
    # every loss is >= 0.5 and each of the 12 tasks is served once
    assert sol.bound >= 0.5 * len(problem.tasks) - 1e-9


def test_the_bounds_of_both_solvers_hold_against_each_others_selection():
    """A proven lower bound is below the loss of every feasible selection, the other solver's too."""
    problem = hard_problem(seed=1)
    a = solve(problem, 5, solver="bip", time_limit=0.3)
    b = solve(problem, 5, solver="branch_and_bound", time_limit=0.3)
    assert a.bound <= b.objective + 1e-9 and b.bound <= a.objective + 1e-9
