"""A job's groupings as a terminal table and a Markdown report with PNG figures (affinity heatmap,
predicted score vs budget)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

Curve = list[tuple[float, dict[str, Any]]]


def _networks(solution: dict[str, Any]) -> list[str]:
    lines = []
    for i, net in enumerate(solution.get("networks", []), start=1):
        trains, serves = ", ".join(net["trains"]), ", ".join(net["serves"]) or "(none)"
        lines.append(
            f"network {i} ({net.get('size', 'full')}, cost {net['cost']:g}): "
            f"trains {trains} → serves {serves}"
        )
    return lines


def grouping_table(curve: Curve) -> str:
    """Budget → networks → the tasks each serves → predicted score, one block per budget."""
    rows = [f"{'budget':>6}  {'predicted score':>15}  networks (trains → serves)", "-" * 100]
    for budget, solution in curve:
        if solution.get("status") == "infeasible":
            rows.append(
                f"{budget:>6g}  {'infeasible':>15}  (minimum feasible budget {solution.get('min_budget')})"
            )
            continue
        lines = _networks(solution) or ["(no network)"]
        rows.append(f"{budget:>6g}  {solution['objective']:>15.5f}  {lines[0]}")
        rows.extend(f"{'':>6}  {'':>15}  {line}" for line in lines[1:])
    return "\n".join(rows)


def write_report(
    out_dir: Path,
    *,
    title: str,
    facts: dict[str, Any],
    tasks: list[str],
    matrix: list[list[float]],
    method: str,
    curve: Curve,
) -> Path:
    """Write ``report.md``, ``affinity.png`` and ``score_vs_budget.png`` into ``out_dir``; returns
    the report's path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    values = np.array(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(tasks), 0.8 + 0.6 * len(tasks)))
    limit = float(np.nanmax(np.abs(values))) or 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    ax.set_xlabel("from task (column)")
    ax.set_ylabel("onto task (row)")
    ax.set_title(f"{method} affinity")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(out_dir / "affinity.png", dpi=120)
    plt.close(fig)

    feasible = [(b, s) for b, s in curve if s.get("status") != "infeasible"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([b for b, _ in feasible], [s["objective"] for _, s in feasible], marker="o")
    ax.set_xlabel("budget (full-size networks)")
    ax.set_ylabel("predicted score (total served affinity)")
    ax.set_title("Predicted score vs inference budget")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "score_vs_budget.png", dpi=120)
    plt.close(fig)

    lines = [f"# {title}", ""]
    lines += [f"- **{key}**: {value}" for key, value in facts.items()]
    lines += [
        "",
        "## Groupings by budget",
        "",
        "| budget | predicted score | networks (trains → serves) |",
        "|---:|---:|---|",
    ]
    for budget, solution in curve:
        if solution.get("status") == "infeasible":
            lines.append(
                f"| {budget:g} | infeasible | minimum feasible budget {solution.get('min_budget')} |"
            )
        else:
            lines.append(f"| {budget:g} | {solution['objective']:.5f} | {'<br>'.join(_networks(solution))} |")
    lines += [
        "",
        "## Predicted score vs budget",
        "",
        "![score vs budget](score_vs_budget.png)",
        "",
        f"## Task affinity ({method})",
        "",
        "Row *i*, column *j*: the affinity onto task *i* from task *j* (positive: a step on *j* lowers "
        "*i*'s loss).",
        "",
        "![affinity heatmap](affinity.png)",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
