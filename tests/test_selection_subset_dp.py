"""The subset DP behind solver ``auto`` on explicit tables: the acceptance sizes (every subset of the
tasks as a full-size network plus half-size single-task networks: n = 12 proven optimal in < 1 s per
budget, n = 16 in < 10 s), one program per curve, the cutoff to the BIP, and the time-limit contract.

Times are CPU seconds of this process (the solvers are single threaded), so a loaded machine does not
stretch them; the measured values are 5-10x below the bounds (bench/results/selection_explicit.md)."""

import itertools
import math
import subprocess
import sys
import time

import numpy as np
import pytest

from grouping.errors import InputError
from grouping.problem import parse_problem
from grouping.selection import solve, solve_curve

#: a time-limited solve returns within its limit plus this much CPU (the last chunk of the program, the
#: cheapest covering and the search-free bound)
TIME_LIMIT_MARGIN = 2.0


def all_subsets(n: int, seed: int = 0) -> dict:
    """Every non-empty subset of n tasks as a full-size network plus a half-size single per task, losses
    from two planted clusters (a member of the same cluster lowers a task's loss, another raises it)."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 2, n)
    base = rng.uniform(0.5, 1.5, n)
    tasks = [f"t{i}" for i in range(n)]
    networks = []
    for size in range(1, n + 1):
        for members in itertools.combinations(range(n), size):
            m = np.array(members)
            same = (cluster[m][:, None] == cluster[m][None, :]).sum(axis=1) - 1
            loss = base[m] * (1 - 0.04 * same + 0.03 * (size - 1 - same) + rng.normal(0, 0.01, size))
            networks.append({"tasks": [tasks[t] for t in members],
                             "loss": {tasks[t]: float(v) for t, v in zip(members, loss, strict=True)}})
    networks += [{"tasks": [t], "size": "half", "loss": {t: float(b * 1.06)}} for t, b in zip(tasks, base,
                                                                                               strict=True)]
    return {"tasks": tasks, "objective": "min_loss", "networks": networks}


@pytest.fixture(scope="module")
def twelve():
    return parse_problem(all_subsets(12))


@pytest.mark.parametrize("budget", [1.0, 1.5, 2.5, 4.0, 6.0])
def test_twelve_tasks_every_subset_proven_optimal_within_a_second(twelve, budget):
    cpu = time.process_time()
    sol = solve(twelve, budget)
    cpu = time.process_time() - cpu
    assert sol.status == "optimal" and sol.proved_by == "subset_dp" and sol.gap == 0
    assert cpu < 1.0, cpu


def test_twelve_tasks_agree_with_branch_and_bound(twelve):
    """An independent exact method on a budget where branch and bound finishes quickly."""
    ours, theirs = solve(twelve, 1.0), solve(twelve, 1.0, solver="branch_and_bound", time_limit=60)
    assert theirs.status == "optimal"
    assert ours.objective == pytest.approx(theirs.objective, abs=1e-9)


def test_sixteen_tasks_every_subset_proven_optimal_within_ten_seconds():
    problem = parse_problem(all_subsets(16, seed=1))
    for budget in (2.0, 8.0):  # 8 = every task on a half-size network: the largest useful budget
        cpu = time.process_time()
        sol = solve(problem, budget)
        cpu = time.process_time() - cpu
        assert sol.status == "optimal" and sol.proved_by == "subset_dp", sol
        assert cpu < 10.0, (budget, cpu)


def test_a_curve_is_one_program_and_never_worse_with_more_budget(twelve):
    budgets = [0.5, 1.0, 1.5, 2.0, 3.0, 4.5, 6.0]
    curve = solve_curve(twelve, budgets)
    assert curve[0].status == "infeasible"
    feasible = curve[1:]
    assert all(s.status == "optimal" and s.proved_by == "subset_dp" for s in feasible)
    assert len({s.solve_seconds for s in feasible}) == 1  # every budget answered by the same program
    objectives = [s.objective for s in feasible]
    assert objectives == sorted(objectives, reverse=True)
    for s in feasible:
        assert s.objective == pytest.approx(solve(twelve, s.budget).objective, abs=1e-12)


def test_past_the_cutoff_auto_runs_the_bip():
    """24 tasks: the DP would need 3^23 block choices; the sparse table is the BIP's."""
    rng = np.random.default_rng(3)
    tasks = [f"t{i}" for i in range(24)]
    networks = [{"tasks": [t], "size": "half", "loss": {t: 1.0}} for t in tasks]
    for _ in range(30):
        members = rng.choice(24, size=int(rng.integers(2, 8)), replace=False)
        networks.append({"tasks": [tasks[t] for t in members],
                         "loss": {tasks[t]: float(rng.uniform(0.5, 1.0)) for t in members}})
    problem = parse_problem({"tasks": tasks, "networks": networks})
    sol = solve(problem, 8.0)
    assert sol.status == "optimal" and sol.proved_by == "bip"
    assert sol.objective == pytest.approx(solve(problem, 8.0, solver="branch_and_bound").objective, abs=1e-9)


@pytest.fixture(scope="module")
def fourteen():
    return parse_problem(all_subsets(14, seed=2))


@pytest.mark.parametrize("solver", ["auto", "subset_dp"])
def test_time_limited_dynamic_program_returns_a_selection_with_a_bound(solver, fourteen):
    problem = fourteen
    cpu = time.process_time()
    sol = solve(problem, 3.0, solver=solver, time_limit=0.05)
    cpu = time.process_time() - cpu
    assert cpu < 0.05 + TIME_LIMIT_MARGIN, cpu
    assert sol.status in ("feasible", "optimal") and sol.proved_by == "subset_dp"
    assert sum(n.cost for n in sol.networks) <= 3.0 + 1e-9
    assert sorted(t for n in sol.networks for t in n.serves) == sorted(problem.tasks)
    assert sol.bound is not None and math.isfinite(sol.bound)
    assert sol.bound <= sol.objective + 1e-9 * max(1.0, abs(sol.objective))


def test_subset_dp_named_on_too_many_tasks_is_refused_with_the_reason():
    tasks = [f"t{i}" for i in range(30)]
    problem = parse_problem({"tasks": tasks, "networks": [{"tasks": tasks, "loss": {t: 1.0 for t in tasks}}]})
    with pytest.raises(InputError) as err:
        solve(problem, 1.0, solver="subset_dp")
    assert err.value.field == "solver" and "GiB" in str(err.value)
    assert solve(problem, 1.0).proved_by == "bip"  # auto goes to the BIP


#: wall-clock margin past the time limit while two other processes keep both cores busy: the table and
#: the cheapest covering before the solve (not counted by the limit), the last chunk, the fallback
BUSY_WALL_MARGIN = 10.0


def test_time_limit_holds_in_wall_clock_while_both_cores_are_busy(fourteen):
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        started = time.monotonic()
        sol = solve(fourteen, 7.0, time_limit=0.2)  # the DP needs several times longer on a busy machine
        wall = time.monotonic() - started
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert wall < 0.2 + BUSY_WALL_MARGIN, wall
    assert sol.status in ("feasible", "optimal") and sol.proved_by == "subset_dp"
    assert sol.bound is not None and sol.bound <= sol.objective + 1e-9 * max(1.0, abs(sol.objective))
