"""Grouping-quality benchmark: how close each method's grouping comes to the optimum, with confidence.

Ground truth (``bench/quality_truth.py``): per generated suite, the exhaustive network table trained
with every truth seed (cached and committed in ``bench/truth/``); per published suite, the authors'
test table. Replicate ``r`` of a generated suite trains every method with seed ``r`` and scores its
selections against the mean test losses of the other seeds, so no method is judged by the networks
it saw. Totals are over STL-relative losses (``"normalize": "stl"``).

At each budget B = 1.5, 2, …, n a method's selection gets the normalised regret
(method − optimal) / (random − optimal) on the truth (``grouping.evaluation.quality_curve``: 0 =
optimal, 1 = a random grouping on average); a replicate's score is its mean over budgets. Every mean
regret comes with a paired bootstrap 95 % confidence interval over the (suite, replicate) units (one
index draw shared by all methods, so differences between methods are paired too).

Methods (the names in the report):

* ``oracle`` — the optimum of the method seed's own exhaustive *test* table: perfect information about
  one training seed; its regret against the other seeds is the floor any method can reach;
* ``exhaustive`` — Standley's protocol on the method seed: every network trained, selected on val;
* ``hoa`` — the 1- and 2-task networks (and the half-size ones) + the Higher-Order Approximation;
* ``esa`` — every network trained for 20 % of the epochs (Early-Stopping Approximation);
* ``tag``, ``tag_first_order``, ``grad_cosine`` — one affinity run, TAG's published rule (groups of
  ≥ 2 tasks, full-size networks only);
* ``tag_half`` — the same TAG matrix, selections that may also use half-size single-task networks;
* ``tag_first_order_half`` — the first-order matrix of the same run, half-size singletons allowed;
* ``tag_val_half`` — TAG with the lookahead measured on a held-out validation batch, half-size
  singletons allowed;
* ``tag_half_x3``, ``tag_first_order_half_x3`` — the mean matrix of three affinity runs with
  different seeds (3 MTL runs), half-size singletons allowed;
* ``hoa_short`` — the pairwise table with every network trained for only 3 epochs, + HOA;
* ``adaptive`` — the active strategy of studies (:mod:`grouping.studies.strategy`): singles, pairs (and
  the half-size singles), then rounds that train every unmeasured network the current selections
  choose, predicted by ``subset_best``, until the selections rest on measured networks only; its
  networks are read from the method seed's exhaustive table (generated suites) or the authors'
  validation table (published suites), with losses divided by each task's single-task network's;
* ``warm_start`` — the all-task network trained once, a copy fine-tuned for half an epoch on each
  task subset (and a half-size all-task network fine-tuned on each single task), selected on the
  copies' validation losses (``grouping.tables.warm_start_table``); ``warm_start_1ep`` fine-tunes for
  a whole epoch.

Cost is in units of one full MTL training run of the method seed (the all-task network): network
steps × measured inference cost. Published suites count networks queried instead.

    python3 bench/grouping_quality.py            # the full run (truth read from bench/truth/)
    python3 bench/grouping_quality.py --quick    # tiny smoke run of the whole pipeline
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.quality_truth import (  # noqa: E402
    REPRODUCIBLE_R,
    GeneratedSuite,
    PublishedSuite,
    ettm1,
    generated_suites,
    mean_table,
    normalized,
    pair_gains,
    split_half_r,
    taskonomy,
    truth_tables,
)
from grouping.affinity import compute_affinity  # noqa: E402
from grouping.data import load_dataset  # noqa: E402
from grouping.evaluation import quality_curve  # noqa: E402
from grouping.problem import parse_problem  # noqa: E402
from grouping.scores import affinity_problem  # noqa: E402
from grouping.selection import solve_curve  # noqa: E402
from grouping.studies.problem import Measurement  # noqa: E402
from grouping.studies.strategy import StudyPlan, initial_networks, next_networks  # noqa: E402
from grouping.tables import NetworkTable, build_table, default_workers, warm_start_table  # noqa: E402

#: the method users get by default (``tag_first_order``, half-size singletons allowed), and the
#: baselines it must beat
DEFAULT_METHOD = "tag_first_order_half"
BASELINES = ("tag", "hoa")
BOOTSTRAP_DRAWS = 10_000
#: seeds of the extra runs of the three-run affinity ensembles: replicate + k·offset (never a truth seed)
ENSEMBLE_SEED_OFFSET = 1000
#: epochs of every network of ``hoa_short`` (the pairwise table trained briefly)
SHORT_PAIR_EPOCHS = 3

Log = Callable[[str], None]


def regrets(truth: dict[str, Any], problem: Any, budgets: list[float]) -> list[float | None]:
    """The regret of ``problem``'s optimal selection at each budget, scored on ``truth``."""
    curve = solve_curve(parse_problem(problem) if isinstance(problem, dict) else problem, budgets)
    selections = {s.budget: s.networks for s in curve if s.status != "infeasible"}
    quality = {q.budget: q.regret for q in quality_curve(truth, selections)}
    return [quality.get(b) for b in budgets]


def table_cost(rows, reference) -> float:
    """Σ steps × measured cost of ``rows`` in units of the reference (all-task) network's."""
    return sum(r.measured_cost * r.epochs_run for r in rows) / (reference.measured_cost
                                                               * reference.epochs_run)


def pair_rows(table: NetworkTable) -> NetworkTable:
    """The pairwise table inside an exhaustive one: 1- and 2-task networks and the half-size ones."""
    return NetworkTable(table.tasks, "pairwise", [r for r in table.rows if len(r.tasks) <= 2],
                        table.metadata)


def adaptive(table: NetworkTable, half_singletons: bool) -> tuple[Any, list[Any]]:
    """The ``adaptive`` study strategy run against ``table``'s validation losses, each divided by its
    task's single-task network's: its final problem (measured networks + ``subset_best``
    predictions) and the rows it trained."""
    tasks = table.tasks
    plan = StudyPlan(tasks, "adaptive", "loss", half_singletons=half_singletons, budgets=budgets_for(tasks))
    stl = {t: table.row((t,)).val_loss[t] for t in tasks}
    rows: list[Any] = []

    def measure(keys: list[Any]) -> list[Measurement]:
        rows.extend(table.row(group, size) for group, size in keys)
        return [Measurement(group, size, {t: table.row(group, size).val_loss[t] / stl[t] for t in group})
                for group, size in keys]

    measured = measure(initial_networks(plan))
    while new := next_networks(plan, measured, {m.key for m in measured}):
        measured += measure(new)
    return plan.problem(measured), rows


def affinity_with(tasks: list[str], matrix: np.ndarray, half: bool) -> dict[str, Any]:
    """TAG's rule on ``matrix`` (diagonal unused), optionally with half-size singletons."""
    return {**affinity_problem(tasks, matrix), "half_singletons": half}


def run_generated(suite: GeneratedSuite, tables: list[NetworkTable], replicate: int, workers: int,
                  log: Log) -> dict[str, dict[str, Any]]:
    """Every method of one replicate: ``{method: {"regret": [per budget], "cost": MTL runs}}``."""
    own = tables[replicate]
    tasks = own.tasks
    budgets = budgets_for(tasks)
    truth = normalized(mean_table([t for k, t in enumerate(tables) if k != replicate]).to_problem("test"))
    reference = own.row(tuple(tasks))
    training = suite.training_for(replicate)
    out: dict[str, dict[str, Any]] = {}

    def record(name: str, problem: Any, cost: float, seconds: float = 0.0) -> None:
        out[name] = {"regret": regrets(truth, problem, budgets), "cost": cost, "seconds": seconds}

    record("oracle", normalized(own.to_problem("test")), table_cost(own.rows, reference))
    record("exhaustive", normalized(own.to_problem("val")), table_cost(own.rows, reference))
    pairs = pair_rows(own)
    record("hoa", normalized(pairs.to_problem("val")), table_cost(pairs.rows, reference))
    active, queried = adaptive(own, half_singletons=True)
    record("adaptive", active, table_cost(queried, reference))

    started = time.perf_counter()
    esa = build_table(suite.spec, "esa", suite.model, training, workers=workers)
    record("esa", normalized(esa.to_problem("val")), table_cost(esa.rows, reference),
           time.perf_counter() - started)

    dataset = load_dataset(suite.spec)
    started = time.perf_counter()
    run = compute_affinity(dataset, ["tag", "tag_first_order", "grad_cosine"], suite.model, training)
    seconds = time.perf_counter() - started
    cost = run.metadata["epochs"] / reference.epochs_run
    for method in ("tag", "tag_first_order", "grad_cosine"):
        record(method, affinity_with(tasks, np.asarray(run.matrices[method]), False), cost, seconds)
    record("tag_half", affinity_with(tasks, np.asarray(run.matrices["tag"]), True), cost, seconds)

    first = {m: np.asarray(run.matrices[m]) for m in ("tag", "tag_first_order")}
    record("tag_first_order_half", affinity_with(tasks, first["tag_first_order"], True), cost, seconds)

    started = time.perf_counter()
    held_out = training.model_copy(update={"lookahead_batch": "val"})
    run = compute_affinity(dataset, ["tag"], suite.model, held_out)
    record("tag_val_half", affinity_with(tasks, np.asarray(run.matrices["tag"]), True),
           run.metadata["epochs"] / reference.epochs_run, time.perf_counter() - started)

    # the mean matrix of three affinity runs with different seeds (the first is the run above)
    matrices, epochs, seconds = {m: [v] for m, v in first.items()}, run.metadata["epochs"], seconds
    for extra in (ENSEMBLE_SEED_OFFSET, 2 * ENSEMBLE_SEED_OFFSET):
        started = time.perf_counter()
        again = compute_affinity(dataset, ["tag", "tag_first_order"], suite.model,
                                 training.model_copy(update={"seed": replicate + extra}))
        seconds += time.perf_counter() - started
        epochs += again.metadata["epochs"]
        for m in matrices:
            matrices[m].append(np.asarray(again.matrices[m]))
    for m, name in (("tag", "tag_half_x3"), ("tag_first_order", "tag_first_order_half_x3")):
        record(name, affinity_with(tasks, np.mean(matrices[m], axis=0), True),
               epochs / reference.epochs_run, seconds)

    started = time.perf_counter()
    short = training.model_copy(update={"epochs": SHORT_PAIR_EPOCHS, "patience": 0})
    quick_pairs = build_table(suite.spec, "pairwise", suite.model, short, workers=workers)
    record("hoa_short", normalized(quick_pairs.to_problem("val")), table_cost(quick_pairs.rows, reference),
           time.perf_counter() - started)

    for name, epochs in (("warm_start", 0.5), ("warm_start_1ep", 1.0)):
        started = time.perf_counter()
        warm = warm_start_table(suite.spec, suite.model, training, finetune_epochs=epochs,
                                half_singletons=True, workers=workers)
        record(name, normalized(warm.to_problem("val")), warm.metadata["mtl_runs"]["total"],
               time.perf_counter() - started)
    log(f"  {suite.name} replicate {replicate}: " + ", ".join(
        f"{m} {mean_of(v['regret']):.3f}" for m, v in out.items()))
    return out


def run_published(suite: PublishedSuite, log: Log) -> dict[str, dict[str, Any]]:
    """The methods that work from trained networks, on a published table (one replicate)."""
    tasks = suite.test.tasks
    budgets = budgets_for(tasks)
    truth = normalized(suite.test.to_problem("test"))
    out = {
        "exhaustive": {"regret": regrets(truth, normalized(suite.val.to_problem("val")), budgets),
                       "cost": float(len(suite.val.rows))},
        "hoa": {"regret": regrets(truth, normalized(pair_rows(suite.val).to_problem("val")), budgets),
                "cost": float(len(pair_rows(suite.val).rows))},
    }
    active, queried = adaptive(suite.val, half_singletons=any(r.size == "half" for r in suite.val.rows))
    out["adaptive"] = {"regret": regrets(truth, active, budgets), "cost": float(len(queried))}
    if suite.esa is not None:
        out["esa"] = {"regret": regrets(truth, normalized(suite.esa.to_problem("val")), budgets),
                      "cost": float(len(suite.esa.rows))}
    log(f"  {suite.name}: " + ", ".join(f"{m} {mean_of(v['regret']):.3f}" for m, v in out.items()))
    return out


def budgets_for(tasks: list[str]) -> list[float]:
    """1.5, 2, …, n (at B = 1 the all-task network is the only grouping: regret is undefined)."""
    return [float(b) for b in np.arange(1.5, len(tasks) + 0.25, 0.5)]


def mean_of(values: list[float | None]) -> float:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else float("nan")


def bootstrap(units: list[dict[str, float]], seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap over units (each ``{method: mean regret}``): per method its mean and 95 % CI,
    and for the default method its difference to each baseline (over the units both have)."""
    rng = np.random.default_rng(seed)
    methods = sorted({m for u in units for m in u})
    draws = rng.integers(0, len(units), size=(BOOTSTRAP_DRAWS, len(units)))

    def interval(values: np.ndarray) -> dict[str, float]:
        present = ~np.isnan(values)
        sums = np.where(present, values, 0.0)[draws].sum(axis=1)
        counts = present[draws].sum(axis=1)
        means = sums[counts > 0] / counts[counts > 0]
        low, high = np.percentile(means, [2.5, 97.5])
        return {"mean": float(np.nanmean(values)), "low": float(low), "high": float(high),
                "units": int(present.sum())}

    table = {m: np.array([u.get(m, np.nan) for u in units]) for m in methods}
    result: dict[str, Any] = {"methods": {m: interval(v) for m, v in table.items()}, "differences": {}}
    if DEFAULT_METHOD in table:
        for base in BASELINES:
            if base in table:
                result["differences"][f"{DEFAULT_METHOD} - {base}"] = interval(table[DEFAULT_METHOD]
                                                                              - table[base])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, 2 seeds (smoke run)")
    parser.add_argument("--replicates", type=int, default=None,
                        help="replicates per generated suite (default: every truth seed)")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--truth", type=Path, default=None, help="truth cache folder (default bench/truth)")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="re-render the report of a saved run (its JSON) without training anything")
    args = parser.parse_args(argv)
    if args.from_json is not None:
        return rerender(args.from_json)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.0f}s] {message}", flush=True)

    suites: list[dict[str, Any]] = []
    units: list[dict[str, float]] = []
    for suite in generated_suites(args.quick):
        log(f"== {suite.name} (truth: {suite.seeds} seeds)")
        cache = {"cache": args.truth} if args.truth else {}
        tables = truth_tables(suite, args.workers, log, **cache)
        r = split_half_r(tables)
        log(f"  split-half r of the pair gains: {r:.3f}")
        replicates = []
        for replicate in range(min(args.replicates or suite.seeds, suite.seeds)):
            result = run_generated(suite, tables, replicate, args.workers, log)
            replicates.append(result)
            if r >= REPRODUCIBLE_R or args.quick:
                units.append({m: mean_of(v["regret"]) for m, v in result.items()})
        suites.append(suite_record(suite.name, "generated", tables[0].tasks, r, replicates,
                                   pair_gains(mean_table(tables)), r >= REPRODUCIBLE_R))
    for published in (ettm1(), taskonomy()):
        log(f"== {published.name} (published: {published.source})")
        result = run_published(published, log)
        units.append({m: mean_of(v["regret"]) for m, v in result.items()})
        suites.append(suite_record(published.name, "published", published.test.tasks, None, [result],
                                   None, True))
    machine = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(), "cpus": os.cpu_count(), "workers": args.workers,
        "torch": torch.__version__, "python": platform.python_version(), "quick": args.quick,
        "total_seconds": time.perf_counter() - started,
        "load_average": list(os.getloadavg()),
    }
    summary = bootstrap(units)
    stem = "grouping_quality_quick" if args.quick else "grouping_quality"
    document = {"machine": machine, "suites": suites, "summary": summary, "default": DEFAULT_METHOD}
    (args.out / f"{stem}.json").write_text(json.dumps(document, indent=1))
    from bench.grouping_quality_report import write_report

    write_report(args.out / f"{stem}.md", document)
    log(f"done; report in {args.out / (stem + '.md')}")
    return 0


def rerender(path: Path) -> int:
    """Recompute the pooled summary of a saved run (e.g. after a change of :data:`DEFAULT_METHOD`) and
    write its report again beside it."""
    document = json.loads(path.read_text())
    units = [{m: mean_of(v["regret"]) for m, v in rep.items()}
             for suite in document["suites"] if suite["accepted"] for rep in suite["replicates"]]
    document["summary"], document["default"] = bootstrap(units), DEFAULT_METHOD
    path.write_text(json.dumps(document, indent=1))
    from bench.grouping_quality_report import write_report

    write_report(path.with_suffix(".md"), document)
    return 0


def suite_record(name: str, kind: str, tasks: list[str], r: float | None,
                 replicates: list[dict[str, dict[str, Any]]], gains: np.ndarray | None,
                 accepted: bool) -> dict[str, Any]:
    """One suite's JSON: per replicate and method the per-budget regrets and costs, and the summary."""
    units = [{m: mean_of(v["regret"]) for m, v in rep.items()} for rep in replicates]
    methods = list(replicates[0])
    return {
        "suite": name, "kind": kind, "tasks": tasks, "split_half_r": r, "accepted": accepted,
        "budgets": budgets_for(tasks), "replicates": replicates,
        "summary": bootstrap(units)["methods"],
        "cost": {m: float(np.mean([rep[m]["cost"] for rep in replicates])) for m in methods},
        "pair_gains": None if gains is None else [[None if np.isnan(v) else float(v) for v in row]
                                                  for row in gains],
    }


if __name__ == "__main__":
    sys.exit(main())
