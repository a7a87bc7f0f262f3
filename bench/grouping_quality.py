"""Grouping-quality benchmark (issue 4): how close each cheap method's grouping comes to the optimum.

On three suites of six tasks (``synthetic``, ``digits-attributes``, ``multidigits``) it builds the
exhaustive network table once (Standley §3.1; cached under ``bench/cache/``), then runs every method,
selects at budgets 1, 1.5, …, n and scores each selection on the exhaustive table's TEST losses with
:func:`grouping.evaluation.quality_curve` (normalised regret (method − optimal) / (random − optimal)).

Methods and how their selection is made:

* ``exhaustive_val`` — the exhaustive table's validation losses (Standley's own protocol: select on val,
  report on test); its regret is the val→test generalisation gap, the floor for every method;
* ``pairwise_hoa`` — the exhaustive table's 1- and 2-task networks + Higher-Order Approximation (§3.3.2);
  these networks are bit-identical to the ones a pairwise run trains (same config and seed), so they
  are reused rather than retrained; the cost counts only them;
* ``esa`` — every network trained for 20% of the epochs (§3.3.1), selected on its validation losses;
* ``tag``, ``tag_first_order``, ``grad_cosine`` — one affinity run of the all-task network each;
* ``label_injection`` (``000_…`` eq. 2), ``rsa``, ``input_attribution`` — STL-based scores;
* ``random`` — one uniformly drawn task grouping feasible at the budget (seeded).

Affinity-score methods give ``max_affinity`` problems (TAG's rule: groups of ≥ 2 tasks, each costing one
full network); their chosen groups are mapped to the exhaustive table's full-size network training that
task set, and each task is served by the best chosen network that trains it (Standley's rule, as
``quality_curve`` does for every method).

Compute cost is in units of one full MTL training run (the exhaustive table's all-task network):
``cost_epochs`` = Σ measured inference cost × epochs run / that network's epochs (the analytic count;
TAG's lookahead overhead is not in it, as ``000_…`` footnote 3), ``cost_time`` = Σ wall seconds / that
network's wall seconds (everything trained with one torch thread per process).

    python3 bench/grouping_quality.py                 # full run (≈ 45 min budget on 2 CPU cores)
    python3 bench/grouping_quality.py --quick         # tiny smoke run (a few minutes)
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from grouping.affinity import compute_affinity  # noqa: E402
from grouping.data import DatasetSpec, TaskSpec, load_dataset  # noqa: E402
from grouping.data.builtin import BUILTIN_DATASETS  # noqa: E402
from grouping.evaluation import (  # noqa: E402
    all_groupings,
    evaluate_scores,
    feasible,
    parse_gains,
    parse_scores,
    quality_curve,
)
from grouping.problem import ChosenNetwork, parse_problem  # noqa: E402
from grouping.scores import (  # noqa: E402
    affinity_problem,
    gains_document,
    label_injection,
    mtl_gain,
    scores_document,
    stl_scores,
)
from grouping.selection import solve_curve  # noqa: E402
from grouping.tables import NetworkTable, TableRow, build_table, default_workers  # noqa: E402
from grouping.training import ModelConfig, TrainingConfig  # noqa: E402

AFFINITY_ENGINE = ("tag", "tag_first_order", "grad_cosine")


@dataclass
class Suite:
    """One benchmark suite: the dataset (six tasks), the surrogate model and the training recipe."""

    name: str
    spec: DatasetSpec
    model: ModelConfig
    training: TrainingConfig


@dataclass
class MethodResult:
    name: str
    cost_epochs: float
    cost_time: float
    quality: list[dict[str, Any]] = field(default_factory=list)
    selections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    matrix: list[list[float | None]] | None = None

    @property
    def mean_regret(self) -> float | None:
        values = [q["regret"] for q in self.quality if q["regret"] is not None]
        return float(np.mean(values)) if values else None


def multidigits_file(cache: Path, n_samples: int) -> Path:
    """The ``multidigits`` images with six derived tasks, written once as NPZ (the built-in has two)."""
    path = cache / f"multidigits6_{n_samples}.npz"
    if not path.exists():
        raw = BUILTIN_DATASETS["multidigits"].build({"n_samples": n_samples, "seed": 0})
        left, right = raw.table["left"], raw.table["right"]
        np.savez(path, image=raw.table["image"], left=left, right=right,
                 left_even=(left % 2 == 0).astype(np.int64),
                 right_prime=np.isin(right, [2, 3, 5, 7]).astype(np.int64),
                 digit_sum=(left + right).astype(np.float32), left_greater=(left > right).astype(np.int64))
    return path


def make_suites(quick: bool, cache: Path) -> list[Suite]:
    """The three suites; ``quick`` shrinks data and epochs for a smoke run."""
    n = 600 if quick else 2000
    epochs = 4 if quick else 50
    # the project's default optimiser (plain SGD, lr 0.05): TAG's lookahead is then the task's own step
    train = TrainingConfig(epochs=epochs, patience=6, batch_size=64, every=5, seed=0, device="cpu")
    synthetic = DatasetSpec(
        source="synthetic",
        options={"n_samples": n, "n_clusters": 2, "tasks_per_cluster": 2, "conflicting_pairs": 1,
                 "noise": 0.3},
        tasks=[TaskSpec(name=t, type="regression")
               for t in ("c0_t0", "c0_t1", "c1_t0", "c1_t1", "x0_a", "x0_b")])
    digits = DatasetSpec(source="digits-attributes", tasks=[
        TaskSpec(name="digit", type="multiclass"), TaskSpec(name="even", type="binary"),
        TaskSpec(name="prime", type="binary"), TaskSpec(name="closed_loop", type="binary"),
        TaskSpec(name="symmetric", type="binary"), TaskSpec(name="ink", type="regression")])
    multi = DatasetSpec(source=str(multidigits_file(cache, n)), features=["image"], tasks=[
        TaskSpec(name="left", type="multiclass"), TaskSpec(name="right", type="multiclass"),
        TaskSpec(name="left_even", type="binary"), TaskSpec(name="right_prime", type="binary"),
        TaskSpec(name="digit_sum", type="regression"), TaskSpec(name="left_greater", type="binary")])
    mlp = ModelConfig(hidden_units=64, hidden_layers=2, representation=32)
    cnn = ModelConfig(backbone="cnn", channels=6, representation=32)
    return [
        Suite("synthetic", synthetic, mlp, train),
        Suite("digits-attributes", digits, cnn, train.model_copy(update={"epochs": 4 if quick else 40})),
        Suite("multidigits", multi, cnn, train.model_copy(update={"epochs": 4 if quick else 40})),
    ]


def cached_table(suite: Suite, method: str, cache: Path, workers: int, log) -> NetworkTable:
    """``build_table`` once per (suite, method, configuration); later runs read the JSON cache."""
    key = json.dumps([suite.spec.model_dump(mode="json"), suite.model.model_dump(),
                      suite.training.model_dump(), method], sort_keys=True)
    path = cache / f"{suite.name}_{method}_{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"
    if path.exists():
        log(f"  {method}: cached {path.name}")
        return NetworkTable.from_dict(json.loads(path.read_text()))
    started = time.perf_counter()

    def progress(k: int, total: int, net) -> None:
        if k % 10 == 0:
            log(f"  {method}: {k}/{total} {'+'.join(net.job.tasks)} {net.job.size} {net.seconds:.1f}s")

    table = build_table(suite.spec, method, suite.model, suite.training, workers=workers, on_done=progress)
    log(f"  {method}: {len(table.rows)} networks in {time.perf_counter() - started:.0f}s")
    path.write_text(json.dumps(table.to_dict()))
    return table


def chosen(solution) -> list[dict[str, Any]]:
    return [net.model_dump(mode="json") for net in solution.networks]


def evaluate(name: str, truth, problem, budgets: list[float], cost: tuple[float, float],
             matrix: np.ndarray | None = None) -> MethodResult:
    """Select on ``problem`` at every budget and score the selections on the ``truth`` table."""
    curve = solve_curve(parse_problem(problem) if isinstance(problem, dict) else problem, budgets)
    selections = {s.budget: s.networks for s in curve if s.status != "infeasible"}
    quality = quality_curve(truth, selections)
    result = MethodResult(name, *cost, [q.to_dict() for q in quality],
                          {str(s.budget): chosen(s) for s in curve if s.status != "infeasible"})
    if matrix is not None:
        result.matrix = [[None if not np.isfinite(v) else float(v) for v in row] for row in matrix]
    return result


def random_method(truth, budgets: list[float], seed: int) -> MethodResult:
    """Standley's "Random" control: one uniformly drawn feasible grouping per budget."""
    rng = np.random.default_rng(seed)
    groupings = all_groupings(truth)
    selections = {}
    for budget in budgets:
        options = feasible(groupings, budget)
        pick = options[int(rng.integers(len(options)))]
        nets = [truth.networks[i] for i in pick.networks]
        selections[budget] = [ChosenNetwork(trains=n.tasks, serves=n.tasks, size=n.size, cost=n.cost)
                              for n in nets]
    quality = quality_curve(truth, selections)
    return MethodResult("random", 0.0, 0.0, [q.to_dict() for q in quality],
                        {str(b): [n.model_dump(mode="json") for n in s] for b, s in selections.items()})


def run_suite(suite: Suite, cache: Path, workers: int, log) -> dict[str, Any]:
    """Every method on one suite; returns the JSON-safe results."""
    log(f"== {suite.name}")
    exhaustive = cached_table(suite, "exhaustive", cache, workers, log)
    tasks = exhaustive.tasks
    budgets = [float(b) for b in np.arange(1.0, len(tasks) + 0.25, 0.5)]
    truth = exhaustive.to_problem("test")
    reference = exhaustive.row(tuple(tasks), "full")

    def cost_of(rows_or_nets) -> tuple[float, float]:
        epochs = sum(r.measured_cost * r.epochs_run for r in rows_or_nets) / (reference.measured_cost
                                                                              * reference.epochs_run)
        return epochs, sum(r.seconds for r in rows_or_nets) / reference.seconds

    results: list[MethodResult] = []
    gain = mtl_gain(exhaustive, "test")
    results.append(evaluate("exhaustive_val", truth, exhaustive.to_problem("val"), budgets,
                            cost_of(exhaustive.rows), gain))

    pair_rows = [r for r in exhaustive.rows if len(r.tasks) <= 2]
    pairwise = NetworkTable(tasks, "pairwise", pair_rows, exhaustive.metadata)
    results.append(evaluate("pairwise_hoa", truth, pairwise.to_problem("val"), budgets, cost_of(pair_rows),
                            mtl_gain(pairwise, "val")))

    esa = cached_table(suite, "esa", cache, workers, log)
    results.append(evaluate("esa", truth, esa.to_problem("val"), budgets, cost_of(esa.rows),
                            mtl_gain(esa, "val")))

    dataset = load_dataset(suite.spec)
    scores: dict[str, np.ndarray] = {}
    # warm-up (first-call set-up of torch.func etc.) so that the timed runs below measure training only
    compute_affinity(dataset, list(AFFINITY_ENGINE), suite.model,
                     suite.training.model_copy(update={"epochs": 1}))
    for method in AFFINITY_ENGINE:
        started = time.perf_counter()
        run = compute_affinity(dataset, [method], suite.model, suite.training)
        seconds = time.perf_counter() - started
        log(f"  {method}: {run.metadata['epochs']} epochs in {seconds:.0f}s")
        matrix = np.array(run.matrices[method], dtype=float)
        np.fill_diagonal(matrix, np.nan)
        scores[method] = matrix
        cost = (run.metadata["epochs"] / reference.epochs_run, seconds / reference.seconds)
        results.append(evaluate(method, truth, affinity_problem(tasks, matrix), budgets, cost, matrix))

    stl_rows = [exhaustive.row((t,), "full") for t in tasks]
    started = time.perf_counter()
    li, injected = label_injection(suite.spec, tasks, suite.model, suite.training, workers=workers,
                                   stl_loss={t: r.test_loss[t] for t, r in zip(tasks, stl_rows, strict=True)})
    log(f"  label_injection: {len(injected)} networks in {time.perf_counter() - started:.0f}s")
    scores["label_injection"] = li
    results.append(evaluate("label_injection", truth, affinity_problem(tasks, li), budgets,
                            cost_of([*stl_rows, *(TableRow.from_trained(n) for n in injected)]), li))

    started = time.perf_counter()
    stl = stl_scores(suite.spec, tasks, suite.model, suite.training, workers=workers)
    seconds = time.perf_counter() - started
    log(f"  rsa/input_attribution: {len(tasks)} STL networks in {seconds:.0f}s")
    for name, matrix in stl.items():
        scores[name] = matrix
        results.append(evaluate(name, truth, affinity_problem(tasks, matrix), budgets, cost_of(stl_rows),
                                matrix))

    results.append(random_method(truth, budgets, seed=0))
    levels = evaluate_scores(parse_gains(gains_document(tasks, gain)),
                             parse_scores(scores_document(tasks, scores), tasks))
    return {
        "suite": suite.name, "tasks": tasks, "budgets": budgets,
        "model": suite.model.model_dump(), "training": suite.training.model_dump(),
        "table_wall_seconds": exhaustive.metadata.get("wall_seconds"),
        "reference": {"epochs": reference.epochs_run, "seconds": reference.seconds},
        "curve": {str(q["budget"]): {k: q[k] for k in ("optimal", "random", "pessimal")}
                  for q in results[0].quality},
        "methods": {r.name: {"cost_epochs": r.cost_epochs, "cost_time": r.cost_time,
                             "mean_regret": r.mean_regret, "quality": r.quality,
                             "selections": r.selections, "matrix": r.matrix}
                    for r in results},
        "score_levels": {name: ev.to_dict() for name, ev in levels.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny data and epochs (smoke run)")
    parser.add_argument("--suites", default="synthetic,digits-attributes,multidigits")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / "cache")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.0f}s] {message}", flush=True)

    wanted = args.suites.split(",")
    suites = [s for s in make_suites(args.quick, args.cache) if s.name in wanted]
    results = []
    for suite in suites:
        results.append(run_suite(suite, args.cache, args.workers, log))
        print_suite(results[-1])
    machine = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "workers": args.workers, "torch": torch.__version__,
        "python": platform.python_version(), "quick": args.quick,
        "total_seconds": time.perf_counter() - started,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    stem = "grouping_quality_quick" if args.quick else "grouping_quality"
    (args.out / f"{stem}.json").write_text(json.dumps({"machine": machine, "suites": results}, indent=1))
    from bench.grouping_quality_report import write_report

    write_report(args.out, stem, machine, results)
    log(f"done; report in {args.out / (stem + '.md')}")
    return 0


def print_suite(result: dict[str, Any]) -> None:
    """The per-suite table: regret per budget, mean regret and compute cost."""
    budgets = result["budgets"]
    print(f"\n{result['suite']}: tasks {', '.join(result['tasks'])}")
    cells = " ".join(f"{b:>5g}" for b in budgets)
    print(f"{'method':18s} {'cost(ep)':>8s} {'cost(t)':>8s} {'mean':>6s} {cells}")
    for name, m in result["methods"].items():
        regrets = {str(q["budget"]): q["regret"] for q in m["quality"]}
        cells = " ".join(f"{regrets[str(b)]:5.2f}" if regrets.get(str(b)) is not None else "    -"
                         for b in budgets)
        mean = f"{m['mean_regret']:6.3f}" if m["mean_regret"] is not None else "     -"
        print(f"{name:18s} {m['cost_epochs']:8.2f} {m['cost_time']:8.2f} {mean} {cells}")
    print()


if __name__ == "__main__":
    sys.exit(main())
