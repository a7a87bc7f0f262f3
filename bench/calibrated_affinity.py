"""Does anchoring the affinity scores on single-task networks fix the default's blind spot?

The default (``tag_first_order`` with half-size singletons) ranks partners well where transfer is
clustered (``clusters-3x2``) but cannot tell when a task is better off *alone*: TAG's half-size
singleton scores a fixed 0, and a slightly positive lookahead affinity always beats it, while the
ground truth of ``clusters-2x3`` puts its regression tasks alone at every budget. Telling that needs an
absolute anchor: each task's loss in the all-task network against its single-task network's.

This experiment scores *calibrated* affinity matrices against the same ground truth, replicates and
regret as ``bench/grouping_quality.py`` (whose helpers it reuses). Per task i, the anchor is the
all-task network's validation gain over task i's single-task network of the method seed,

    y_i = 1 − L_i(all tasks) / L_i({i})            (half-size or full-size single-task network),

and the matrix handed to the solver (TAG's rule with half-size singletons, which score 0) is either

* ``offset λ``: ``C[i][j] = y_i + λ · (A[i][j] − mean_k A[i][k])``, the affinity's deviation from its row
  mean on top of the anchor (λ = 0: only "alone or grouped" is decided by the anchor), or
* ``z σ``: ``C[i][j] = y_i + σ · z_i(A[i][j])``, the row-standardised affinity scaled to σ (a relative loss),

so that, as in Standley's Higher-Order Approximation, a group's score onto i is the anchor plus the
mean calibrated affinity from its mates. The single-task anchors are the method seed's own networks
(the same networks the method would train: same recipe and seed); their cost is counted in MTL runs
like every other network (steps × measured inference cost over the all-task run's).

    python3 bench/calibrated_affinity.py      # about 2 min: one affinity run per replicate

Writes ``bench/results/calibrated_affinity.md`` (mean regret with paired bootstrap 95 % CIs over the
(suite, replicate) units, cost in MTL runs, and the paired difference to ``hoa`` and to the default).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.grouping_quality import (  # noqa: E402
    affinity_with,
    bootstrap,
    budgets_for,
    mean_of,
    pair_rows,
    regrets,
    table_cost,
)
from bench.quality_truth import generated_suites, mean_table, normalized, truth_tables  # noqa: E402
from grouping.affinity import compute_affinity  # noqa: E402
from grouping.data import load_dataset  # noqa: E402

OFFSET_SCALES = (0.0, 1.0, 3.0, 10.0, 30.0)
Z_SCALES = (0.003, 0.01, 0.03)
DEFAULT = "tag_first_order_half"


def calibrated(affinity: np.ndarray, anchor: np.ndarray, *, offset: float | None = None,
               z: float | None = None) -> np.ndarray:
    """The ``offset λ`` or ``z σ`` matrix of the module docstring (exactly one of them given)."""
    a = affinity.astype(float).copy()
    np.fill_diagonal(a, np.nan)
    mean = np.nanmean(a, axis=1, keepdims=True)
    if offset is not None:
        out = anchor[:, None] + offset * (a - mean)
    else:
        spread = np.nanstd(a, axis=1, keepdims=True)
        out = anchor[:, None] + z * (a - mean) / np.where(spread > 0, spread, 1.0)
    return np.nan_to_num(out)


def replicate(suite, tables, r: int) -> dict[str, dict[str, float]]:
    """Every variant of one replicate: ``{name: {"regret": mean over budgets, "cost": MTL runs}}``."""
    own, tasks = tables[r], tables[r].tasks
    budgets = budgets_for(tasks)
    truth = normalized(mean_table([t for k, t in enumerate(tables) if k != r]).to_problem("test"))
    everything = own.row(tuple(tasks))
    run = compute_affinity(load_dataset(suite.spec), ["tag_first_order"], suite.model,
                           suite.training_for(r))
    affinity = np.asarray(run.matrices["tag_first_order"])
    run_cost = run.metadata["epochs"] / everything.epochs_run
    out = {DEFAULT: {"regret": mean_of(regrets(truth, affinity_with(tasks, affinity, True), budgets)),
                     "cost": run_cost}}
    pairs = pair_rows(own)
    out["hoa"] = {"regret": mean_of(regrets(truth, normalized(pairs.to_problem("val")), budgets)),
                  "cost": table_cost(pairs.rows, everything)}
    for size in ("half", "full"):
        singles = [own.row((t,), size) for t in tasks]
        anchor = np.array([1.0 - everything.val_loss[t] / s.val_loss[t] for t, s in zip(tasks, singles,
                                                                                        strict=True)])
        cost = run_cost + table_cost(singles, everything)
        variants = {f"{size} anchor, offset {v:g}": calibrated(affinity, anchor, offset=v)
                    for v in OFFSET_SCALES}
        variants |= {f"{size} anchor, z {v:g}": calibrated(affinity, anchor, z=v) for v in Z_SCALES}
        for name, matrix in variants.items():
            out[name] = {"regret": mean_of(regrets(truth, affinity_with(tasks, matrix, True), budgets)),
                         "cost": cost}
    return out


def main() -> int:
    torch.set_num_threads(1)
    started = dt.datetime.now(dt.UTC)
    results: dict[str, list[dict[str, dict[str, float]]]] = {}
    for suite in generated_suites():
        tables = truth_tables(suite, 1, print)
        for r in range(suite.seeds):
            results.setdefault(suite.name, []).append(replicate(suite, tables, r))
            print(f"{suite.name} replicate {r}: done", flush=True)
    units = [{m: v["regret"] for m, v in rep.items()} for reps in results.values() for rep in reps]
    summary = bootstrap(units)["methods"]
    differences = {}
    for base in ("hoa", DEFAULT):
        for name in summary:
            if name != base:
                diff = [{"d": u[name] - u[base]} for u in units]
                differences[(name, base)] = bootstrap(diff)["methods"]["d"]
    costs = {m: float(np.mean([rep[m]["cost"] for reps in results.values() for rep in reps]))
             for m in summary}
    per_suite = {s: {m: float(np.mean([rep[m]["regret"] for rep in reps])) for m in summary}
                 for s, reps in results.items()}
    load = "/".join(f"{v:.2f}" for v in os.getloadavg())
    lines = [
        "# Calibrated affinity: single-task anchors on top of the default's scores",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC by `python3 bench/calibrated_affinity.py` (torch "
        f"{torch.__version__}, load average at the end {load}). Ground truth, replicates and regret as in "
        "`grouping_quality.md` (generated suites only: the variants need an affinity run). See the "
        "script's docstring for the variants.",
        "",
        "| variant | cost (MTL runs) | " + " | ".join(per_suite) + " | pooled mean regret [95 % CI] "
        "| − hoa [95 % CI] | − default [95 % CI] |",
        "|---|---:|" + "---:|" * len(per_suite) + "---|---|---|",
    ]
    for name in sorted(summary, key=lambda m: summary[m]["mean"]):
        s = summary[name]

        def diff(base: str, name: str = name) -> str:
            d = differences.get((name, base))
            return "–" if d is None else f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"

        lines.append(f"| {name} | {costs[name]:.2f} | "
                     + " | ".join(f"{per_suite[x][name]:.3f}" for x in per_suite)
                     + f" | {s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}] | {diff('hoa')} | "
                     f"{diff(DEFAULT)} |")
    best = min((m for m in summary if "anchor" in m), key=lambda m: summary[m]["mean"])
    verdict = ("beats" if differences[(best, "hoa")]["high"] < 0 else "does not beat")
    lines += [
        "",
        f"Best calibrated variant: `{best}`, pooled {summary[best]['mean']:.3f} at {costs[best]:.2f} MTL "
        f"runs; it {verdict} `hoa` (paired difference CI above).",
    ]
    path = ROOT / "bench" / "results" / "calibrated_affinity.md"
    path.write_text("\n".join(lines) + "\n")
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
