"""Markdown report and PNG plots of ``bench/grouping_quality.py``'s results.

Per suite: total test loss vs inference budget for every method with the optimal, random and pessimal
groupings (as Standley et al. 2020, Fig. 4), and a heatmap of every method's pair matrix (onto the row
from the column; for table methods the MTL gain of eq. 5 computed from that method's own table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_curves(result: dict[str, Any], path: Path) -> None:
    """Loss vs budget: one line per method, shaded band between optimal and pessimal."""
    budgets = result["budgets"]
    curve = [result["curve"][str(b)] for b in budgets]
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(budgets, [c["optimal"] for c in curve], "k-", lw=2.5, label="optimal")
    ax.plot(budgets, [c["random"] for c in curve], "k--", lw=1.5, label="random (expected)")
    ax.plot(budgets, [c["pessimal"] for c in curve], "k:", lw=1.5, label="pessimal grouping")
    for name, method in result["methods"].items():
        points = sorted((q["budget"], q["method"]) for q in method["quality"])
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, lw=1, label=name)
    ax.set_xlabel("inference budget (full-size networks)")
    ax.set_ylabel("total test loss (lower is better)")
    ax.set_title(f"{result['suite']}: performance vs inference budget")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_heatmaps(result: dict[str, Any], path: Path) -> None:
    """One heatmap per method that has a pair matrix (colour range: 95th percentile of |value|)."""
    items = [(name, np.array([[np.nan if v is None else v for v in row] for row in m["matrix"]], dtype=float))
             for name, m in result["methods"].items() if m.get("matrix") is not None]
    cols = 3
    rows = (len(items) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    tasks = result["tasks"]
    for ax, (name, matrix) in zip(axes.flat, items, strict=False):
        finite = matrix[np.isfinite(matrix)]
        # colours clip at the 95th percentile of |value|, so one huge entry (label injection of a task's
        # own determinant, e.g. digit -> even) does not wash out the rest
        bound = float(np.percentile(np.abs(finite), 95)) if finite.size else 1.0
        bound = bound if bound > 0 else 1.0
        image = ax.imshow(matrix, cmap="RdBu", vmin=-bound, vmax=bound)
        ax.set_xticks(range(len(tasks)), tasks, rotation=60, fontsize=6, ha="right")
        ax.set_yticks(range(len(tasks)), tasks, fontsize=6)
        title = "MTL gain % (exhaustive, test)" if name == "exhaustive_val" else name
        ax.set_title(title, fontsize=8)
        fig.colorbar(image, ax=ax, fraction=0.046)
    for ax in list(axes.flat)[len(items):]:
        ax.axis("off")
    fig.suptitle(f"{result['suite']}: pair matrices (onto row from column; colours clipped at the 95th "
                 "percentile of |value|)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def write_report(out: Path, stem: str, machine: dict[str, Any], results: list[dict[str, Any]]) -> Path:
    """``out/<stem>.md`` plus ``<stem>_<suite>_curve.png`` and ``_heatmaps.png`` per suite."""
    lines = [
        "# Grouping-quality benchmark",
        "",
        f"Run {machine['date']} on {machine['platform']} ({machine['processor']}, {machine['cpus']} CPUs, "
        f"{machine['workers']} worker processes), Python {machine['python']}, torch {machine['torch']}; "
        f"total wall time {machine['total_seconds'] / 60:.1f} min"
        + (" (QUICK smoke settings)" if machine["quick"] else "") + ".",
        "",
        "Regret = (method − optimal) / (random − optimal) of the total TEST loss on the exhaustive table "
        "(0 = optimal, 1 = as good as a random grouping on average). Every method selects on its own "
        "information (validation losses, approximations or affinity scores); affinity problems use TAG's "
        "rule (groups of ≥ 2 tasks, one full network each), and every chosen network is looked up in the "
        "exhaustive table with each task served by the best chosen network that trains it (Standley's rule). "
        "Cost is in units of one full MTL training run (the all-task network of the exhaustive table): "
        "`cost(ep)` counts network-epochs × measured inference cost, `cost(t)` wall seconds.",
        "",
        "Notes: the machine was shared with other jobs while this ran, so wall times (and `cost(t)`) are "
        "pessimistic and noisy; table networks train two at a time in worker processes while the affinity "
        "runs train alone in the main process, so `cost(t)` of tag/tag_first_order/grad_cosine is "
        "flattered relative to `cost(ep)`. `exhaustive_val` selects on the exhaustive table's validation "
        "losses: its regret is the val→test noise floor of the ground truth itself. Regret is undefined "
        "(–) at B = 1, where the all-task network is the only grouping.",
        "",
    ]
    summary = ["## Mean regret per method", "", "| method | " + " | ".join(r["suite"] for r in results)
               + " | mean |", "|---|" + "---:|" * (len(results) + 1)]
    names = list(results[0]["methods"]) if results else []
    for name in names:
        values = [r["methods"][name]["mean_regret"] for r in results]
        finite = [v for v in values if v is not None]
        summary.append(f"| {name} | " + " | ".join(_fmt(v, ".3f") for v in values)
                       + f" | {_fmt(float(np.mean(finite)) if finite else None, '.3f')} |")
    lines += summary + [""]
    for result in results:
        suite = result["suite"]
        curve_png = f"{stem}_{suite}_curve.png"
        heat_png = f"{stem}_{suite}_heatmaps.png"
        plot_curves(result, out / curve_png)
        plot_heatmaps(result, out / heat_png)
        budgets = result["budgets"]
        lines += [
            f"## {suite}", "",
            f"Tasks: {', '.join(result['tasks'])}. Exhaustive table built in "
            f"{_fmt(result['table_wall_seconds'], '.0f')} s; reference all-task network: "
            f"{result['reference']['epochs']} epochs, {result['reference']['seconds']:.1f} s.", "",
            "| method | cost(ep) | cost(t) | mean regret | " + " | ".join(f"B={b:g}" for b in budgets) + " |",
            "|---|---:|---:|---:|" + "---:|" * len(budgets),
        ]
        for name, m in result["methods"].items():
            regrets = {q["budget"]: q["regret"] for q in m["quality"]}
            lines.append(f"| {name} | {m['cost_epochs']:.2f} | {m['cost_time']:.2f} | "
                         f"{_fmt(m['mean_regret'], '.3f')} | "
                         + " | ".join(_fmt(regrets.get(b)) for b in budgets) + " |")
        lines += ["", "Optimal / random / pessimal total test loss per budget: "
                  + "; ".join(f"{b:g}: {result['curve'][str(b)]['optimal']:.3f} / "
                              f"{_fmt(result['curve'][str(b)]['random'], '.3f')} / "
                              f"{_fmt(result['curve'][str(b)]['pessimal'], '.3f')}" for b in budgets), "",
                  "Score levels vs the true MTL gain (\"It's a Match\" §3.2): Pearson over all pairs, "
                  "mean Kendall τ-b.",
                  "", "| score | pearson_all | kendall_mean |", "|---|---:|---:|"]
        for name, level in result["score_levels"].items():
            lines.append(f"| {name} | {_fmt(level['pearson_all'])} | {_fmt(level['kendall_mean'])} |")
        lines += ["", f"![{suite} loss vs budget]({curve_png})", "", f"![{suite} heatmaps]({heat_png})", ""]
    path = out / f"{stem}.md"
    path.write_text("\n".join(lines) + "\n")
    return path
