"""Why 100 planted tasks with 5 networks stay unproven: the master LP's duals and the two pricing bounds.

A diagnosis, not a target: it measures the three things a 5 % gap at ``planted(100, 100)`` with
``k = 5`` would need, on the solver's own master LP and pricing:

1. **Duals.** Column generation with the solver's heuristic pricing (greedy growth of pairs; local
   search from the generated groups of highest reduced cost when that finds nothing), plain and with
   Wentges smoothing (pricing at ``alpha * centre + (1 - alpha) * RMP duals``; the centre moves to
   the point with the lowest estimate ``sum_i p_i + k mu + k max(0, best d found)``), for
   ``--seconds`` each. The estimate is not a bound (heuristic pricing may miss groups); it says how
   close the duals are to proving the target.
2. **The Lagrangian bound** (``grouping.selection.pricing.lagrangian_bound``, ``--bound-seconds``) from
   the plain run's last RMP duals and from the smoothed run's centre.
3. **Exact pricing per group size** at the smoothed centre: seconds for the solver's exact search
   (``GroupPricer.groups_above``) to list every group of ``m`` tasks with ``d >= threshold`` (the
   reduced cost a 5 % bound allows: ``(1.05 z - (sum p + k mu)) / k``), stopped after
   ``--size-seconds`` per size.

Run (about 10 minutes on 2 cores)::

    nice python3 bench/selection_bound_limits.py [--seconds 240]

and it writes ``bench/results/selection_bound_limits.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

import numpy as np
from selection_scaling import planted

from grouping.problem import parse_problem
from grouping.selection.column_generation import (  # the solver's own master and pricing: a diagnosis of it
    _heuristic_columns,
    _Master,
    _starting_pairs,
)
from grouping.selection.partition_search import good_partitions, partition_value
from grouping.selection.pricing import GroupPricer, PricingTimeout, lagrangian_bound, reduced_costs

REPORT = Path(__file__).parent / "results" / "selection_bound_limits.md"
TASKS, NETWORKS = 100, 5


def column_generation(a: np.ndarray, alpha: float, seconds: float) -> dict:
    """Heuristic column generation for ``seconds`` (module docstring, 1): the trajectory, the last RMP
    duals and the centre with the lowest estimate."""
    started = time.monotonic()
    master = _Master(a, lambda g: "full", [(NETWORKS, {"full": 1})])
    master.add(tuple(range(len(a))))
    for group in _starting_pairs(a):
        master.add(group)
    partitions = good_partitions(a, NETWORKS, 2, deadline=started + 9.0)
    for partition in partitions:
        for group in partition:
            master.add(group)
    centre, centre_estimate, rows, rounds, shown = None, np.inf, [], 0, -np.inf
    while time.monotonic() - started < seconds:
        z, pi, mu = master.solve_lp(None)
        rounds += 1
        p, p_mu = (pi, mu) if centre is None or not alpha else (alpha * centre[0] + (1 - alpha) * pi,
                                                                alpha * centre[1] + (1 - alpha) * mu)
        found = _heuristic_columns(master, p, p_mu, 1e-9, None)
        estimate = float(p.sum() + NETWORKS * p_mu) + NETWORKS * max(0.0, found[0][0] if found else 0.0)
        if estimate < centre_estimate:
            centre, centre_estimate = (p.copy(), p_mu), estimate
        groups = [g for _d, g in found]
        improving = [g for g, d in zip(groups, reduced_costs(a, pi, mu, groups), strict=True) if d > 1e-9]
        if not improving and alpha:  # mis-pricing: the smoothed point prices nothing new, so it is the centre
            centre, centre_estimate = (p.copy(), p_mu), estimate
        for group in improving:
            master.add(group, pi)
        elapsed = time.monotonic() - started
        if elapsed - shown >= 30.0 or elapsed >= seconds:
            shown = elapsed
            rows.append((elapsed, rounds, z, estimate, centre_estimate, len(master.columns)))
    return {"rows": rows, "last": (z, pi, mu), "centre": centre, "start": partition_value(a, partitions[0]),
            "sizes": sorted(len(group) for group in partitions[0])}


def exact_seconds_per_size(a: np.ndarray, pi: np.ndarray, mu: float, threshold: float,
                           per_size: float) -> list[tuple[int, float, bool, float | None]]:
    """``(m, seconds, finished, best d >= threshold or None)`` of the solver's exact pricing per group
    size, each stopped after ``per_size`` seconds, until two sizes in a row do not finish."""
    pricer, rows, unfinished = GroupPricer(a), [], 0
    for m in range(2, len(a) + 1):
        started = time.monotonic()
        try:
            found = pricer.groups_above(pi, mu, threshold, deadline=started + per_size, sizes=range(m, m + 1))
            finished, best = True, found[0][0] if found else None
        except PricingTimeout:
            finished, best = False, None
        rows.append((m, time.monotonic() - started, finished, best))
        unfinished = 0 if finished else unfinished + 1
        if unfinished == 2:
            break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=240.0, help="column generation per run")
    parser.add_argument("--alpha", type=float, default=0.8, help="Wentges smoothing of the second run")
    parser.add_argument("--bound-seconds", type=float, default=20.0)
    parser.add_argument("--size-seconds", type=float, default=10.0)
    args = parser.parse_args()
    a = parse_problem(planted(TASKS, TASKS)).score_matrix()
    runs = {"plain": column_generation(a, 0.0, args.seconds),
            f"smoothed (alpha {args.alpha})": column_generation(a, args.alpha, args.seconds)}
    incumbent, sizes = max((run["start"], run["sizes"]) for run in runs.values())
    lines = [f"# Bound limits at planted n = {TASKS}, k = {NETWORKS}", "",
             f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, load average "
             f"{os.getloadavg()[0]:.1f}, "
             f"`python3 bench/selection_bound_limits.py --seconds {args.seconds:g}`. "
             f"Best starting partition (the solver's selection): {incumbent:.4f}, groups of "
             f"{', '.join(map(str, sizes))} tasks; a 5 % gap needs a bound <= {1.05 * incumbent:.4f}.", "",
             "## 1. Heuristic column generation", "",
             "| run | seconds | rounds | z_RMP | estimate at the priced duals | best estimate | columns |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, run in runs.items():
        lines += [f"| {name} | {s:.0f} | {r} | {z:.4f} | {e:.3f} | {c:.3f} | {cols} |"
                  for s, r, z, e, c, cols in run["rows"]]
    lines += ["", "The estimate adds `k` times the best reduced cost heuristic pricing found: not a bound.",
              "",
              "## 2. Lagrangian bound", "", "| from | bound | gap | seconds |", "|---|---:|---:|---:|"]
    plain, smoothed = runs["plain"], runs[f"smoothed (alpha {args.alpha})"]
    starts = {"plain run's last RMP duals": plain["last"],
              "smoothed run's centre": (float(smoothed["centre"][0].sum() + NETWORKS * smoothed["centre"][1]),
                                        *smoothed["centre"])}
    for name, (z, pi, mu) in starts.items():
        started = time.monotonic()
        bound = lagrangian_bound(a, z, pi, mu, NETWORKS, incumbent, alone=False,
                                 deadline=time.monotonic() + args.bound_seconds)
        lines.append(f"| {name} | {bound:.4f} | {100 * (bound - incumbent) / incumbent:.1f} % | "
                     f"{time.monotonic() - started:.1f} |")
    pi, mu = smoothed["centre"]
    threshold = (1.05 * incumbent - float(pi.sum() + NETWORKS * mu)) / NETWORKS
    lines += ["", "## 3. Exact pricing per group size at the smoothed centre "
              f"(threshold d >= {threshold:.3f})",
              "",
              f"Stopped after {args.size_seconds:g} s per size and after two unfinished sizes in a row.", "",
              "| size | seconds | finished | best d above the threshold (finished sizes) |",
              "|---:|---:|---|---:|"]
    lines += [f"| {m} | {s:.2f} | {'yes' if done else 'no'} | {'—' if best is None else f'{best:.3f}'} |"
              for m, s, done, best in exact_seconds_per_size(a, pi, mu, threshold, args.size_seconds)]
    REPORT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
