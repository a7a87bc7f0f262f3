"""Markdown report of ``bench/grouping_quality.py``: per suite the reproducibility of its ground truth,
per method its cost and mean regret with a 95 % confidence interval, the oracle floor, and the pooled
comparison of the default method with the baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ORDER = ("oracle", "exhaustive", "hoa", "adaptive", "esa", "hoa_short", "tag_half_x3",
         "tag_first_order_half_x3", "tag_val_half", "tag_half", "tag_first_order_half", "tag",
         "tag_first_order", "grad_cosine",
         "warm_start", "warm_start_1ep")


def _ci(entry: dict[str, float] | None) -> str:
    if not entry:
        return "–"
    return f"{entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def _load(machine: dict[str, Any]) -> str:
    """The 1/5/15-minute load averages at the end of the run, or what the run recorded instead."""
    load = machine.get("load_average")
    if isinstance(load, list):
        return "/".join(f"{v:.2f}" for v in load) + " (1/5/15-min averages at the end)"
    return str(load) if load else "not recorded"


def _ordered(names) -> list[str]:
    return sorted(names, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER))


def write_report(path: Path, document: dict[str, Any]) -> None:
    """Write the report of one benchmark run (the JSON ``document`` the benchmark saves beside it)."""
    machine, summary, default = document["machine"], document["summary"], document["default"]
    lines = [
        "# Grouping-quality benchmark",
        "",
        f"Run {machine['date']} on {machine['platform']} ({machine['cpus']} CPUs, {machine['workers']} "
        f"worker processes), torch {machine['torch']}; total wall time "
        f"{machine['total_seconds'] / 60:.1f} min{' (QUICK smoke run)' if machine['quick'] else ''}; "
        f"load: {_load(machine)}.",
        "",
        "Regret = (method − optimal) / (random − optimal) of the total STL-relative test loss on the "
        "ground truth, averaged over budgets 1.5, 2, …, n (0 = optimal, 1 = a random grouping on "
        "average). Generated suites: the truth is the mean of the exhaustive tables of all truth seeds "
        "but the method's own; each replicate trains the method with a different seed. Published "
        "suites: one replicate, truth = the authors' test table. Intervals are paired bootstrap 95 % "
        "CIs over the (suite, replicate) units. `oracle` = the optimum of the method seed's own "
        "exhaustive test table: the floor any method can reach against other seeds. Cost is in full "
        "MTL training runs (generated) or networks queried (published).",
        "",
        "## Pooled over accepted suites",
        "",
        "| method | units | cost (MTL runs, generated suites) | mean regret [95 % CI] |",
        "|---|---:|---:|---|",
    ]
    generated = [s for s in document["suites"] if s["kind"] == "generated"]
    costs = {m: sum(s["cost"][m] for s in generated) / len(generated)
             for m in summary["methods"] if generated and all(m in s["cost"] for s in generated)}
    for method in _ordered(summary["methods"]):
        entry = summary["methods"][method]
        cost = f"{costs[method]:.2f}" if method in costs else "–"
        lines.append(f"| {method}{' (default)' if method == default else ''} | {entry['units']} | {cost} | "
                     f"{_ci(entry)} |")
    lines += ["", "| paired difference | units | mean [95 % CI] | default better? |", "|---|---:|---|---|"]
    for name, entry in summary["differences"].items():
        verdict = "yes (CI below 0)" if entry["high"] < 0 else "not resolved" if entry["low"] < 0 else "no"
        lines.append(f"| {name} | {entry['units']} | {_ci(entry)} | {verdict} |")
    chosen, floor = summary["methods"].get(default), summary["methods"].get("oracle")
    if chosen and floor:
        lines += ["", f"Default `{default}`: mean regret {chosen['mean']:.3f}, "
                  f"{chosen['mean'] - floor['mean']:+.3f} from the cross-seed oracle floor "
                  f"({floor['mean']:.3f}); cost {costs.get(default, float('nan')):.2f} MTL runs."]
    lines += _targets(document, costs)
    for suite in document["suites"]:
        lines += ["", f"## {suite['suite']} ({suite['kind']})", "", f"Tasks: {', '.join(suite['tasks'])}."]
        if suite["split_half_r"] is not None:
            verdict = "accepted" if suite["accepted"] else "NOT accepted (below 0.8): excluded from the pool"
            lines.append(f"Split-half reproducibility of the pair-gain matrix: r = "
                         f"{suite['split_half_r']:.3f} ({verdict}); {len(suite['replicates'])} replicates.")
        unit = "MTL runs" if suite["kind"] == "generated" else "networks"
        lines += ["", f"| method | cost ({unit}) | mean regret [95 % CI] |", "|---|---:|---|"]
        for method in _ordered(suite["summary"]):
            lines.append(f"| {method} | {suite['cost'][method]:.2f} | {_ci(suite['summary'][method])} |")
        if suite["pair_gains"] is not None:
            tasks = suite["tasks"]
            lines += ["", "Pair gains of the truth (relative test-loss gain of the row task from the "
                      "column task):", "", "| onto \\ from | " + " | ".join(tasks) + " |",
                      "|---|" + "---:|" * len(tasks)]
            for task, row in zip(tasks, suite["pair_gains"], strict=True):
                cells = " | ".join("–" if v is None else f"{v:+.3f}" for v in row)
                lines.append(f"| {task} | {cells} |")
    path.write_text("\n".join(lines) + "\n")


def _targets(document: dict[str, Any], costs: dict[str, float]) -> list[str]:
    """The default method against the benchmark's targets: CI strictly below ``tag``'s and ``hoa``'s
    (paired differences), at most 3 MTL runs, within 0.10 of the cross-seed oracle floor; with the
    shortfall of each target missed."""
    summary, default = document["summary"], document["default"]
    methods, differences = summary["methods"], summary["differences"]
    if default not in methods or "oracle" not in methods:
        return []
    lines = ["", "## Targets for the default", "", "| target | result | met? |", "|---|---|---|"]
    for rival in ("tag", "hoa"):
        entry = differences.get(f"{default} - {rival}")
        if entry is None:
            continue
        met = entry["high"] < 0
        shortfall = "" if met else f"; missed: the paired CI's upper end is {entry['high']:+.3f}"
        if not met and entry["mean"] > 0:
            shortfall += f", the mean {entry['mean']:+.3f} ({rival} better)"
        lines.append(f"| CI strictly below `{rival}`'s | {default} − {rival} = {_ci(entry)} over "
                     f"{entry['units']} units{shortfall} | {'yes' if met else 'no'} |")
    cost = costs.get(default)
    if cost is not None:
        lines.append(f"| cost at most 3 MTL runs | {cost:.2f} | {'yes' if cost <= 3 else 'no'} |")
    gap = methods[default]["mean"] - methods["oracle"]["mean"]
    lines.append(f"| mean regret within 0.10 of the oracle floor | {gap:+.3f} "
                 f"({methods[default]['mean']:.3f} vs {methods['oracle']['mean']:.3f}) | "
                 f"{'yes' if gap <= 0.10 else 'no'} |")
    published = [s["suite"] for s in document["suites"] if s["kind"] == "published"]
    if published:
        lines.append(f"| measured on the published suites ({', '.join(published)}) | not run there: the "
                     "default is an affinity method, which needs training data, and a published suite is "
                     "a table of networks the authors trained | no |")
    if "hoa" in methods and methods["hoa"]["mean"] < methods["oracle"]["mean"]:
        lines += ["", f"`hoa` ({methods['hoa']['mean']:.3f}) is below the oracle floor "
                  f"({methods['oracle']['mean']:.3f}), the exact optimum of the method seed's own exhaustive "
                  "test table: pooling every pair network smooths the seed noise that the one-seed optimum "
                  "fits. A method of at most 3 MTL runs whose CI lies below `hoa`'s would have to do better "
                  "than perfect knowledge of one training seed's networks."]
    return lines
