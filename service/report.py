"""A job's groupings as a terminal table and a Markdown report with PNG figures (a task-by-task
heatmap, predicted objective vs budget), each grouping with its trust line where it has one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Curve = list[tuple[float, dict[str, Any]]]


@dataclass(frozen=True)
class Heatmap:
    """A task × task matrix to draw: ``values[i][j]`` about task ``i`` (row) and task ``j`` (column);
    colours centre on ``center``; ``low_is_good`` puts the good end of the scale in blue."""

    values: list[list[float | None]]
    title: str
    caption: str
    file: str
    center: float = 0.0
    low_is_good: bool = False


def trust_line(solution: dict[str, Any]) -> str | None:
    """``predicted gain over one all-task network: X [low, high], better in Y% of resamples`` for a
    solution with a trust report that has a gain (``None`` otherwise); the selection that *is* the
    all-task network says so instead."""
    trust = solution.get("trust") or {}
    gain = trust.get("gain")
    if not gain:
        return None
    if gain["value"] == gain["low"] == gain["high"] == 0.0:
        return "predicted gain over one all-task network: none (this is the all-task network)"
    return (
        f"predicted gain over one all-task network: {gain['value']:.4g} "
        f"[{gain['low']:.4g}, {gain['high']:.4g}], better in {100 * trust['win_rate']:.0f}% of resamples"
    )


def _networks(solution: dict[str, Any]) -> list[str]:
    lines = []
    for i, net in enumerate(solution.get("networks", []), start=1):
        trains, serves = ", ".join(net["trains"]), ", ".join(net["serves"]) or "(none)"
        lines.append(
            f"network {i} ({net.get('size', 'full')}, cost {net['cost']:g}): "
            f"trains {trains} → serves {serves}"
        )
    return lines


def _same_as(curve: Curve) -> list[float | None]:
    """Per budget, the smaller budget whose selection it repeats (``None``: a new selection)."""
    out: list[float | None] = []
    first: tuple[float, Any] | None = None
    for budget, solution in curve:
        nets = [(tuple(n["trains"]), tuple(n["serves"]), n.get("size")) for n in solution.get("networks", [])]
        if solution.get("status") == "infeasible" or not nets:
            out.append(None)
            first = None
        elif first is not None and first[1] == nets:
            out.append(first[0])
        else:
            out.append(None)
            first = (budget, nets)
    return out


def grouping_table(curve: Curve, objective: str = "predicted score") -> str:
    """Budget → networks → the tasks each serves → the predicted ``objective``, one block per budget,
    closed by the trust line (:func:`trust_line`) where the grouping has one; a budget that buys the
    same networks as the budget before it says so in one line."""
    width = max(15, len(objective))
    rows = [f"{'budget':>6}  {objective:>{width}}  networks (trains → serves)", "-" * 100]
    for (budget, solution), same in zip(curve, _same_as(curve), strict=True):
        if solution.get("status") == "infeasible":
            least = solution.get("min_budget")
            rows.append(f"{budget:>6g}  {'infeasible':>{width}}  (minimum feasible budget {least})")
            continue
        if same is not None:
            value = f"{solution['objective']:>{width}.5f}"
            rows.append(f"{budget:>6g}  {value}  (the networks of budget {same:g})")
            continue
        lines = _networks(solution) or ["(no network)"]
        trust = trust_line(solution)
        if trust:
            lines.append(trust)
        rows.append(f"{budget:>6g}  {solution['objective']:>{width}.5f}  {lines[0]}")
        rows.extend(f"{'':>6}  {'':>{width}}  {line}" for line in lines[1:])
    return "\n".join(rows)


def write_report(
    out_dir: Path,
    *,
    title: str,
    facts: dict[str, Any],
    tasks: list[str],
    heatmap: Heatmap,
    curve: Curve,
    objective: str = "predicted score",
    objective_note: str = "",
    curve_file: str = "score_vs_budget.png",
) -> Path:
    """Write ``report.md``, the heatmap PNG (``heatmap.file``) and the objective-vs-budget PNG
    (``curve_file``) into ``out_dir``; returns the report's path. Every grouping's row carries its
    trust line (:func:`trust_line`) where it has one."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    values = np.array([[np.nan if v is None else v for v in row] for row in heatmap.values], dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(tasks), 0.8 + 0.6 * len(tasks)))
    spread = float(np.nanmax(np.abs(values - heatmap.center))) if np.isfinite(values).any() else 0.0
    spread = spread or 1.0
    image = ax.imshow(
        values,
        cmap="RdBu" if heatmap.low_is_good else "RdBu_r",
        vmin=heatmap.center - spread,
        vmax=heatmap.center + spread,
    )
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    ax.set_xlabel("with task (column)")
    ax.set_ylabel("task (row)")
    ax.set_title(heatmap.title)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(out_dir / heatmap.file, dpi=120)
    plt.close(fig)

    feasible = [(b, s) for b, s in curve if s.get("status") != "infeasible"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([b for b, _ in feasible], [s["objective"] for _, s in feasible], marker="o")
    intervals = [(b, s["trust"]["objective"]) for b, s in feasible if s.get("trust")]
    if intervals:
        ax.fill_between(
            [b for b, _ in intervals],
            [i["low"] for _, i in intervals],
            [i["high"] for _, i in intervals],
            alpha=0.2,
            label="95% interval over resamples of the estimate",
        )
        ax.legend()
    ax.set_xlabel("budget (full-size networks)")
    ax.set_ylabel(objective)
    ax.set_title(f"{objective[:1].upper()}{objective[1:]} vs inference budget")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / curve_file, dpi=120)
    plt.close(fig)

    lines = [f"# {title}", ""]
    lines += [f"- **{key}**: {value}" for key, value in facts.items()]
    lines += [
        "",
        "## Groupings by budget",
        "",
        *([objective_note, ""] if objective_note else []),
        f"| budget | {objective} | networks (trains → serves) | predicted gain over one all-task network |",
        "|---:|---:|---|---|",
    ]
    for (budget, solution), same in zip(curve, _same_as(curve), strict=True):
        if solution.get("status") == "infeasible":
            lines.append(
                f"| {budget:g} | infeasible | minimum feasible budget {solution.get('min_budget')} | |"
            )
        else:
            trust = (trust_line(solution) or "").removeprefix("predicted gain over one all-task network: ")
            networks = "<br>".join(_networks(solution))
            if same is not None:
                networks = f"the networks of budget {same:g}"
            lines.append(f"| {budget:g} | {solution['objective']:.5f} | {networks} | {trust} |")
    lines += [
        "",
        f"## {objective[:1].upper()}{objective[1:]} vs budget",
        "",
        f"![{objective} vs budget]({curve_file})",
        "",
        f"## {heatmap.title}",
        "",
        heatmap.caption,
        "",
        f"![{heatmap.title}]({heatmap.file})",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
