"""Scaling of affinity-form network selection (``bip``: column generation) on structured instances.

Instances (``singletons="forbid"``, budget k = the number of full-size networks):

* planted clusters with noise (:func:`planted`): unequal clusters, each row scaled by its own
  strength (asymmetric), affinities within a cluster uniform in [0.3, 1), between clusters normal
  around -0.1 (many negative), n = 40, 60, 100, 500 at several k (and n = 7, small enough for the
  exact reference);
* a TAG matrix the project computed itself (``bench/selection_tag36.json``: ``taskgrouper affinity``,
  ``tag_first_order``, on the built-in ``synthetic`` dataset with 8 clusters of 4 tasks and 2
  conflicting pairs = 36 tasks; half-size singletons allowed; cached so reruns do not retrain).

Per instance it prints, for the solver of this tree, status, gap, seconds and ``proved_by``, beside

* the previous method: ``bip`` of the commit before this work (``PREVIOUS_COMMIT``, checked out in a
  temporary ``git worktree`` and run in a subprocess with the same time limit, at the same time as
  this tree's solve of the same instance; not run past
  ``--previous-max-tasks``, where its pricing's O(n^4) temporaries would exhaust memory);
* an independent exact reference where one finishes: plain-Python enumeration of every selection of
  at most k groups (only tiny n; ``--reference-max-tasks``), otherwise "none finishes";
* a simple iterated local search (:func:`simple_ils`, independent of the package: random single-task
  moves, a random kick of the best partition after ``n k`` failed moves) given the solver's wall time;
  the last column is how much better it is than the solver (must be <= 0).

The explicit form (``bench/selection_explicit.py``, all-subset tables) is included as a second section
when that module is present. The report goes to ``--out`` (default
``bench/results/selection_scaling.md``), with the load average before and after the run.

    nice python3 bench/selection_scaling.py [--only planted-40] [--no-explicit]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from grouping.candidates import group_scores
from grouping.problem import parse_problem
from grouping.selection import solve
from grouping.selection.column_generation import TIME_MARGIN_SECONDS, TIME_MARGIN_SHARE

ROOT = Path(__file__).resolve().parent
#: the commit before this solver: its ``bip`` is the previous method
PREVIOUS_COMMIT = "56eaa0759f298a9d8068bc1b585167b0f753afc9"
TAG36 = ROOT / "selection_tag36.json"

_PREVIOUS_SCRIPT = """
import json, sys, time
from grouping.problem import parse_problem
from grouping.selection import solve
problem = parse_problem(json.load(open(sys.argv[1])))
started = time.perf_counter()
sol = solve(problem, float(sys.argv[2]), solver="bip", time_limit=float(sys.argv[3]))
print(json.dumps({"status": sol.status, "objective": sol.objective, "bound": sol.bound, "gap": sol.gap,
                  "seconds": time.perf_counter() - started}))
"""


def planted(n: int, seed: int, clusters: int | None = None) -> dict:
    """Planted clusters (``max(2, n // 6)`` by default) of unequal sizes (Dirichlet shares, at least 2
    tasks each), rows scaled by a strength in [0.5, 1.5), within-cluster affinities uniform in
    [0.3, 1.0), between-cluster ones normal(-0.1, 0.2); self-affinities in [1, 2)."""
    rng = np.random.default_rng(seed)
    c = clusters or max(2, n // 6)
    sizes = 2 + np.floor(rng.dirichlet(np.full(c, 2.0)) * (n - 2 * c)).astype(int)
    sizes[: n - sizes.sum()] += 1
    label = np.repeat(np.arange(c), sizes)[rng.permutation(n)]
    same = label[:, None] == label[None, :]
    strength = rng.uniform(0.5, 1.5, n)[:, None]
    m = np.where(same, rng.uniform(0.3, 1.0, (n, n)), rng.normal(-0.1, 0.2, (n, n))) * strength
    np.fill_diagonal(m, 1.0 + rng.uniform(0, 1, n))
    return {"tasks": [f"t{i}" for i in range(n)], "objective": "max_affinity", "singletons": "forbid",
            "affinity": {"onto_row_from_column": m.tolist()}}


def tag36() -> dict:
    data = json.loads(TAG36.read_text())
    data.pop("metadata", None)
    return data


def instances() -> list[tuple[str, dict, list[int], float]]:
    """``(name, problem, budgets, time limit)``."""
    return [
        ("planted-7", planted(7, 7, clusters=3), [2, 3], 60.0),
        ("planted-40", planted(40, 40), [3, 5, 8, 10], 60.0),
        ("planted-60", planted(60, 60), [4, 10], 60.0),
        ("planted-100", planted(100, 100), [5, 17], 60.0),
        ("planted-500", planted(500, 500), [84], 120.0),
        ("tag-synthetic-36", tag36(), [3, 6, 8], 60.0),
    ]


def _value(a: np.ndarray, label: np.ndarray) -> float:
    return float(sum(group_scores(a, tuple(np.flatnonzero(label == g))).sum() for g in np.unique(label)))


def simple_ils(a: np.ndarray, k: int, seconds: float, seed: int = 0) -> float:
    """Best partition value into at most ``k`` groups of >= 2 tasks found in ``seconds``: random
    single-task moves kept when not worse, a kick (10 % of the tasks moved at random) of the best
    partition after ``n k`` failed moves in a row."""
    n = len(a)
    rng = np.random.default_rng(seed)
    k = max(1, min(k, n // 2))
    label = np.arange(n) % k
    rng.shuffle(label)
    value = _value(a, label)
    best, best_value = label.copy(), value
    fails, deadline = 0, time.monotonic() + seconds

    def group_value(members: np.ndarray) -> float:
        return 0.0 if len(members) < 2 else float(a[np.ix_(members, members)].sum() / (len(members) - 1))

    while time.monotonic() < deadline:
        i, g = int(rng.integers(n)), int(rng.integers(k))
        old = label[i]
        if g == old or (label == old).sum() <= 2:
            fails += 1
        else:
            before = group_value(np.flatnonzero(label == old)) + group_value(np.flatnonzero(label == g))
            label[i] = g
            after = group_value(np.flatnonzero(label == old)) + group_value(np.flatnonzero(label == g))
            if after >= before - 1e-12:
                value += after - before
                fails = 0 if after > before + 1e-12 else fails + 1
            else:
                label[i] = old
                fails += 1
        if value > best_value + 1e-12:
            best, best_value = label.copy(), value
        if fails > n * k:
            label = best.copy()
            sizes = np.bincount(label, minlength=k)
            for j in rng.choice(n, max(2, n // 10), replace=False):
                h = int(rng.integers(k))
                if sizes[label[j]] > 2:
                    sizes[label[j]] -= 1
                    sizes[h] += 1
                    label[j] = h
            value, fails = _value(a, label), 0
    return best_value


def reference(a: np.ndarray, k: int) -> float:
    """Exact optimum by enumerating every selection of at most ``k`` groups of >= 2 tasks, each task
    served by its best chosen group (plain Python; only for tiny n)."""
    n = len(a)
    groups = [g for size in range(2, n + 1) for g in itertools.combinations(range(n), size)]
    scores = [dict(zip(g, group_scores(a, g), strict=True)) for g in groups]
    best = -np.inf
    for count in range(1, k + 1):
        for combo in itertools.combinations(range(len(groups)), count):
            total = 0.0
            for i in range(n):
                s = max((scores[c][i] for c in combo if i in scores[c]), default=None)
                if s is None:
                    break
                total += s
            else:
                best = max(best, total)
    return best


class Previous:
    """``PREVIOUS_COMMIT`` in a temporary ``git worktree``; one subprocess per solve."""

    def __enter__(self) -> Previous:
        self.folder = Path(tempfile.mkdtemp(prefix="selection_scaling_")) / "previous"
        subprocess.run(["git", "-C", str(ROOT.parent), "worktree", "add", "--detach", str(self.folder),
                        PREVIOUS_COMMIT], check=True, capture_output=True)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["git", "-C", str(ROOT.parent), "worktree", "remove", "--force", str(self.folder)],
                       check=False, capture_output=True)

    def start(self, problem_file: Path, budget: float, limit: float) -> tuple[subprocess.Popen, float]:
        """Start one solve in the background (it runs beside this tree's solve of the same instance)."""
        env = {**os.environ, "PYTHONPATH": str(self.folder)}
        proc = subprocess.Popen([sys.executable, "-c", _PREVIOUS_SCRIPT, str(problem_file), str(budget),
                                 str(limit)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, cwd=self.folder)
        return proc, time.perf_counter()

    @staticmethod
    def result(handle: tuple[subprocess.Popen, float], limit: float) -> dict:
        proc, started = handle
        try:
            out, _ = proc.communicate(timeout=max(1.0, started + 4 * limit + 60 - time.perf_counter()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return {"status": "killed", "seconds": time.perf_counter() - started}
        if proc.returncode != 0:
            return {"status": f"error (exit {proc.returncode})", "seconds": time.perf_counter() - started}
        return json.loads(out.strip().splitlines()[-1])


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.3g} %"


def _num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def run(names: set[str] | None, previous_max_tasks: int, reference_max_tasks: int,
        results: list[dict] | None = None) -> list[str]:
    """The table's lines; each solve's ``(instance, n, k, limit, status, gap, seconds, ILS - solver)`` is
    appended to ``results`` as a dict."""
    lines = ["| instance | n | k | status | gap | s | objective | bound | previous: status, gap, s "
             "| exact reference | ILS (same time) | ILS − solver |",
             "|---|---:|---:|---|---:|---:|---:|---:|---|---|---:|---:|"]
    with Previous() as previous, tempfile.TemporaryDirectory() as tmp:
        for name, data, budgets, limit in instances():
            if names and name not in names:
                continue
            problem = parse_problem(data)
            a = problem.score_matrix()
            n = len(problem.tasks)
            problem_file = Path(tmp) / f"{name}.json"
            problem_file.write_text(json.dumps(data))
            for k in budgets:
                handle = previous.start(problem_file, k, limit) if n <= previous_max_tasks else None
                sol = solve(problem, k, time_limit=limit)
                ils = simple_ils(a, k, sol.solve_seconds, seed=k)
                if handle is not None:
                    old = previous.result(handle, limit)
                    prev = f"{old['status']}, {_pct(old.get('gap'))}, {old.get('seconds', 0):.1f}"
                else:
                    prev = "not run (O(n^4) pricing memory)"
                ref = f"{reference(a, k):.4f}" if n <= reference_max_tasks else "none finishes"
                row = (f"| {name} | {n} | {k} | {sol.status} ({sol.proved_by}) | {_pct(sol.gap)} | "
                       f"{sol.solve_seconds:.1f} | {_num(sol.objective)} | {_num(sol.bound)} | {prev} | "
                       f"{ref} | "
                       f"{ils:.4f} | {ils - sol.objective:+.4f} |")
                print(row, flush=True)
                lines.append(row)
                if results is not None:
                    results.append({"instance": name, "n": n, "k": k, "limit": limit, "status": sol.status,
                                    "gap": sol.gap, "seconds": sol.solve_seconds,
                                    "ils_minus_solver": ils - sol.objective})
    return lines


def acceptance(results: list[dict]) -> list[str]:
    """The affinity form's targets against this run: planted n = 40 proven optimal within 60 s at every k,
    planted n = 100 within a 5 % gap in 60 s, planted n = 500 a valid selection and bound within 120 s plus
    the documented margin, and no selection beaten by the ILS given the same time."""

    def verdict(name: str, ok, target: str) -> list[str]:
        return [f"| {name}, k = {r['k']}: {target} | {r['status']}, gap {_pct(r['gap'])}, "
                f"{r['seconds']:.1f} s | {'met' if ok(r) else 'missed'} |"
                for r in results if r["instance"] == name]

    lines = ["| target | result | met? |", "|---|---|---|"]
    lines += verdict("planted-40", lambda r: r["status"] == "optimal" and r["seconds"] <= 60,
                     "proven optimal in 60 s")
    lines += verdict("planted-100",
                     lambda r: r["gap"] is not None and r["gap"] <= 0.05 and r["seconds"] <= 60,
                     "gap <= 5 % in 60 s")
    lines += verdict("planted-500", lambda r: r["gap"] is not None
                     and r["seconds"] <= r["limit"] * (1 + TIME_MARGIN_SHARE) + TIME_MARGIN_SECONDS,
                     "selection and bound within 120 s + margin")
    worst = max(results, key=lambda r: r["ils_minus_solver"], default=None)
    if worst is not None:
        lines.append(f"| no selection beaten by the ILS given the same time | largest ILS − solver "
                     f"{worst['ils_minus_solver']:+.4f} ({worst['instance']}, k = {worst['k']}) | "
                     f"{'met' if worst['ils_minus_solver'] <= 1e-9 * max(1.0, worst['n']) else 'missed'} |")
    return lines


def explicit_section() -> list[str]:
    """The explicit form's rows from ``bench/selection_explicit.py`` (only this tree's ``auto`` and the
    reference; its own report compares with the previous methods)."""
    sys.path.insert(0, str(ROOT))
    try:
        from selection_explicit import explicit_rows
    except ImportError:
        return ["(bench/selection_explicit.py is not present)"]
    rows = explicit_rows([12, 16], previous_max_tasks=0, reference_max_tasks=12)
    out = ["| instance | n | networks | budget | method | status | proved_by | objective | gap "
           "| vs reference | s |",
           "|---|---:|---:|---:|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['instance']} | {r['n']} | {r['networks']} | {r['budget']:g} | {r['method']} | "
                   f"{r['status']} | {r['proved_by']} | {_num(r['objective'])} | {_pct(r['gap'])} | "
                   f"{_pct(r['vs_reference'])} | {r['seconds']:.3f} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated instance names")
    parser.add_argument("--previous-max-tasks", type=int, default=100)
    parser.add_argument("--reference-max-tasks", type=int, default=7)
    parser.add_argument("--no-explicit", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "results" / "selection_scaling.md"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.time()
    results: list[dict] = []
    table = run({s for s in args.only.split(",") if s} or None, args.previous_max_tasks,
                args.reference_max_tasks, results)
    explicit = [] if args.no_explicit else explicit_section()
    load_after = os.getloadavg()
    facts = (f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {time.time() - started:.0f} s, "
             f"{platform.python_version()}, {os.cpu_count()} cores shared with other jobs; load average "
             f"(1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, after "
             f"{load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}. Previous method: `bip` at "
             f"{PREVIOUS_COMMIT[:7]} with the same limit, in a subprocess running at the same time as this "
             "tree's solve and the ILS of the same instance (so both compete for the cores).")
    report = ["# Network selection at scale (affinity form)", "", facts, "", *table, "",
              "## Acceptance targets (affinity form, this run)", "", *acceptance(results)]
    if explicit:
        report += ["", "## Explicit all-subset tables (from bench/selection_explicit.py)", "", *explicit]
    Path(args.out).write_text("\n".join(report) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
