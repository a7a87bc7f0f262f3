"""Scaling of the affinity ``bip`` solver against TAG-style exhaustive enumeration (issue 2 targets).

For random pairwise-affinity instances with n = 9, 12, 16, 20, 25, 30 tasks (``singletons="forbid"``,
k = round(n / 3) groups), prints the ``bip`` (column generation) solve time, status and gap, beside the
time of enumerating every combination of k groups of >= 2 tasks in plain Python, as TAG's notebook
does (capped; past the cap the projected time from the measured rate is printed; past 2^20 groups it
is not started). Run with one core:

    OMP_NUM_THREADS=1 taskset -c 0 python3 bench/selection_scaling.py [--sizes 9,12] [--cap 120]
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np

from grouping.problem import parse_problem
from grouping.selection import solve


def instance(n: int, seed: int) -> dict:
    """Affinities uniform in [-0.2, 1) off the diagonal, self-affinities in [1, 2)."""
    rng = np.random.default_rng(seed)
    m = rng.uniform(-0.2, 1.0, (n, n))
    np.fill_diagonal(m, rng.uniform(1.0, 2.0, n))
    return {
        "tasks": [f"t{i}" for i in range(n)],
        "objective": "max_affinity",
        "singletons": "forbid",
        "affinity": {"onto_row_from_column": m.tolist()},
        "network_cost": 1.0,
    }


#: above this many groups the enumeration is not even started (their list alone would exhaust memory)
MAX_GROUPS = 1 << 20


def enumerate_combinations(m: list[list[float]], k: int, cap: float) -> tuple[float | None, float, int, int]:
    """TAG's notebook search: every combination of k groups (>= 2 tasks), each task at its best group.

    Returns (best total score or None if capped, seconds, combinations checked, combinations in all).
    """
    n = len(m)
    groups = [g for size in range(2, n + 1) for g in itertools.combinations(range(n), size)]
    score = [{i: sum(m[i][j] for j in g if j != i) / (len(g) - 1) for i in g} for g in groups]
    total = math.comb(len(groups), k)
    best, checked, start = -math.inf, 0, time.perf_counter()
    for combo in itertools.combinations(range(len(groups)), k):
        checked += 1
        if checked % 20000 == 0 and time.perf_counter() - start > cap:
            return None, time.perf_counter() - start, checked, total
        value = 0.0
        for i in range(n):
            s = max((score[g][i] for g in combo if i in score[g]), default=None)
            if s is None:
                break
            value += s
        else:
            best = max(best, value)
    return best, time.perf_counter() - start, checked, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="9,12,16,20,25,30")
    parser.add_argument("--cap", type=float, default=120.0, help="seconds allowed to the enumeration")
    parser.add_argument("--time-limit", type=float, default=60.0, help="bip time limit per instance")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        f"{'n':>3} {'k':>3} {'bip s':>8} {'status':>9} {'gap':>8} {'objective':>10} "
        f"{'enumeration':>24} {'ratio':>10}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        k = round(n / 3)
        data = instance(n, args.seed + n)
        sol = solve(parse_problem(data), k, time_limit=args.time_limit)
        head = f"{n:>3} {k:>3} {sol.solve_seconds:>8.2f} {sol.status:>9} {sol.gap:>8.2%} "
        head += f"{sol.objective:>10.4f}"
        groups = 2**n - n - 1
        if groups > MAX_GROUPS:
            combos = math.comb(groups, k)
            print(f"{head} {'not attempted':>24} {'-':>10}  ({combos:.1e} combinations)", flush=True)
            continue
        best, seconds, checked, total = enumerate_combinations(
            data["affinity"]["onto_row_from_column"], k, args.cap
        )
        if best is None:
            projected = seconds * total / checked
            enum = f"did not finish (~{projected:.1e} s)"
            ratio = f">{seconds / sol.solve_seconds:.0f}x"
        else:
            assert abs(best - sol.objective) <= 1e-9 * max(1.0, abs(best)), (best, sol.objective)
            enum, ratio = f"{seconds:.1f} s", f"{seconds / sol.solve_seconds:.0f}x"
        print(f"{head} {enum:>24} {ratio:>10}", flush=True)


if __name__ == "__main__":
    main()
