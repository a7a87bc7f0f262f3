"""``time_limit`` is honoured on an instance too large to finish: the solver stops soon after it and
returns a valid selection (status ``feasible``) with a bound no worse than its objective."""

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
    started = time.monotonic()
    sol = solve(problem, 5, solver=solver, time_limit=0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 10.0, elapsed  # branch and bound used to go on for minutes past its limit
    assert sol.status in ("feasible", "optimal")
    assert sum(n.cost for n in sol.networks) <= 5 + 1e-9
    assert sorted(t for n in sol.networks for t in n.serves) == sorted(problem.tasks)
    assert sol.bound <= sol.objective + 1e-9
