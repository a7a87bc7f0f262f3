"""Explicit network selection (Standley's form): the ``auto`` dispatcher beside the previous methods.

Instances: every subset of n tasks as a full-size network (cost 1) plus n half-size single-task networks
(cost 0.5), with losses derived from planted clusters (:func:`planted_problem`), n = 8 … 16, several
budgets; and the published tables under ``../shared/data`` that fit the explicit form (Taskonomy
setting 1 of Standley et al. 2020, ETTm1 of MTG-Net 2022). Per instance and budget it prints status,
gap (``|bound - objective| / |objective|``) and time of

* ``auto`` (this tree: the subset DP, or the BIP past the cutoff; ``proved_by`` says which),
* the previous methods ``bip`` and ``branch_and_bound``, run from a checkout of the commit before the
  subset DP (``git worktree`` in a temporary folder, one subprocess per solve, with a time limit),
* an independent exact reference (:func:`reference_optima`: a plain-Python enumeration of every block
  each network can serve and every partition of the tasks into blocks, ``3^n`` work) where it finishes,
  and the difference of each objective from it.

A second table measures the cutoff of ``auto``: CPU seconds of the subset DP per unit of
``DPSize.work`` on all-subset and sparse tables, beside the BIP on the same tables.

    nice python3 bench/selection_explicit.py [--sizes 8,10,12,14,16] [--previous-limit 30]
        [--previous-max-tasks 12] [--reference-max-tasks 12] [--out bench/results/selection_explicit.md]

:func:`explicit_rows` returns the rows of the first table (``bench/selection_scaling.py`` includes them).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from grouping.candidates import CandidateTable, read_standley_table
from grouping.problem import parse_problem
from grouping.selection import solve
from grouping.selection.bip import solve_table_bip
from grouping.selection.budget import CostScale
from grouping.selection.subset_dp import SubsetDP, dp_size

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
#: the commit before the subset DP and ``auto``: its ``bip`` and ``branch_and_bound`` are "previous"
PREVIOUS_COMMIT = "56eaa0759f298a9d8068bc1b585167b0f753afc9"


def planted_problem(n: int, seed: int = 0) -> dict:
    """An all-subset explicit table with half-size singles, losses from planted clusters.

    Tasks fall into ``max(2, n // 4)`` clusters of unequal sizes; the transfer onto task ``t`` from ``u``
    is ``A[t, u]`` (about +0.10 within a cluster, -0.05 across, asymmetric noise of 0.03). A full-size
    network on ``S`` has on each member ``t`` the loss ``b_t (1 - mean_{u in S, u != t} A[t, u] +
    0.004 (|S| - 1) + e)``, ``e ~ N(0, 0.005)``, with base losses ``b_t`` in [0.5, 1.5]; the half-size
    single-task network has ``b_t (1.06 + e)``."""
    rng = np.random.default_rng(seed)
    k = max(2, n // 4)
    cluster = np.sort(rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 2.0))))
    same = cluster[:, None] == cluster[None, :]
    transfer = np.where(same, 0.10, -0.05) + rng.normal(0, 0.03, (n, n))
    base = rng.uniform(0.5, 1.5, n)
    tasks = [f"t{i}" for i in range(n)]
    networks = []
    for size in range(1, n + 1):
        for members in itertools.combinations(range(n), size):
            m = np.array(members)
            gain = (transfer[np.ix_(m, m)].sum(axis=1) - np.diag(transfer)[m]) / max(size - 1, 1)
            loss = base[m] * (1 - gain + 0.004 * (size - 1) + rng.normal(0, 0.005, size))
            values = {tasks[t]: round(float(v), 6) for t, v in zip(members, loss, strict=True)}
            networks.append({"tasks": [tasks[t] for t in members], "cost": 1.0, "loss": values})
    for t in range(n):
        networks.append({"tasks": [tasks[t]], "cost": 0.5, "size": "half",
                         "loss": {tasks[t]: round(float(base[t] * (1.06 + rng.normal(0, 0.005))), 6)}})
    return {"tasks": tasks, "objective": "min_loss", "networks": networks}


def ettm1_problem() -> dict | None:
    """MTG-Net's ETTm1 validation gains as an explicit ``max_score`` table (127 full-size networks)."""
    folder = SHARED / "mtgnet2022"
    if not (folder / "ETTm1_x.csv").exists():
        return None
    members = np.loadtxt(folder / "ETTm1_x.csv").astype(bool)
    gains = np.loadtxt(folder / "ETTm1_val_y.csv")
    tasks = [f"e{i}" for i in range(members.shape[1])]
    networks = [{"tasks": [tasks[t] for t in np.flatnonzero(row)], "cost": 1.0,
                 "score": {tasks[t]: float(gain[t]) for t in np.flatnonzero(row)}}
                for row, gain in zip(members, gains, strict=True)]
    return {"tasks": tasks, "objective": "max_score", "networks": networks}


def standley_problem() -> dict | None:
    """Taskonomy setting 1 (Standley et al. 2020), validation losses, half-size singles included."""
    path = SHARED / "standley2020" / "setting1_val.tsv"
    return read_standley_table(path).to_dict() if path.exists() else None


def reference_optima(problem: dict, budgets: list[float]) -> list[float]:
    """The optimum at each budget, independently of the package: plain Python, exact fractions for
    costs. Every block (a subset of the tasks a network has a value for) gets its best value per cost;
    ``f[U][b]`` is the best partition of ``U`` into blocks costing at most ``b`` steps, with ``U``'s
    lowest task in the first block (``3^n`` block choices per budget step). Values are minimised
    (scores negated) and returned in the problem's own sense."""
    sign = 1.0 if problem["objective"] == "min_loss" else -1.0
    key = "loss" if problem["objective"] == "min_loss" else "score"
    index = {t: i for i, t in enumerate(problem["tasks"])}
    costs = [Fraction(net.get("cost", 1.0)).limit_denominator(10**6) for net in problem["networks"]]
    denominator = math.lcm(*(c.denominator for c in costs))
    step = Fraction(math.gcd(*(int(c * denominator) for c in costs)) or 1, denominator)
    top = max(int(Fraction(b).limit_denominator(10**6) / step) for b in budgets)
    blocks: dict[tuple[int, int], float] = {}
    for net, cost in zip(problem["networks"], costs, strict=True):
        units = int(cost / step)
        if units > top:
            continue
        served = [(index[t], sign * v) for t, v in net[key].items()]
        for r in range(1, len(served) + 1):
            for sub in itertools.combinations(served, r):
                mask = sum(1 << t for t, _ in sub)
                value = sum(v for _, v in sub)
                if value < blocks.get((mask, units), math.inf):
                    blocks[(mask, units)] = value
    by_mask: dict[int, list[tuple[int, float]]] = {}
    for (mask, units), value in blocks.items():
        by_mask.setdefault(mask, []).append((units, value))
    n = len(problem["tasks"])
    f = [[math.inf] * (top + 1) for _ in range(1 << n)]
    f[0] = [0.0] * (top + 1)
    for u in range(1, 1 << n):
        low = u & -u
        row = f[u]
        rest = u ^ low
        sub = rest
        while True:
            block = sub | low
            for units, value in by_mask.get(block, ()):
                below = f[u ^ block]
                for b in range(units, top + 1):
                    v = value + below[b - units]
                    if v < row[b]:
                        row[b] = v
            if sub == 0:
                break
            sub = (sub - 1) & rest
    return [sign * f[(1 << n) - 1][int(Fraction(b).limit_denominator(10**6) / step)] for b in budgets]


_PREVIOUS_SCRIPT = """
import json, sys, time
from grouping.problem import parse_problem
from grouping.selection import solve
problem = parse_problem(json.load(open(sys.argv[1])))
started = time.perf_counter()
sol = solve(problem, float(sys.argv[2]), solver=sys.argv[3], time_limit=float(sys.argv[4]))
print(json.dumps({"status": sol.status, "objective": sol.objective, "bound": sol.bound, "gap": sol.gap,
                  "seconds": time.perf_counter() - started}))
"""


class Previous:
    """The previous commit checked out in a temporary ``git worktree``, solving in subprocesses."""

    def __enter__(self) -> Previous:
        self.folder = Path(tempfile.mkdtemp(prefix="selection_explicit_")) / "previous"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(self.folder),
                        PREVIOUS_COMMIT], check=True, capture_output=True)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.folder)],
                       check=False, capture_output=True)
        shutil.rmtree(self.folder.parent, ignore_errors=True)

    def solve(self, problem_file: Path, budget: float, solver: str, limit: float) -> dict:
        env = {**os.environ, "PYTHONPATH": str(self.folder)}
        try:
            done = subprocess.run([sys.executable, "-c", _PREVIOUS_SCRIPT, str(problem_file), str(budget),
                                   solver, str(limit)], env=env, capture_output=True, text=True,
                                  timeout=limit + 300, cwd=self.folder)
        except subprocess.TimeoutExpired:
            return {"status": f"killed after {limit + 300:.0f} s"}
        if done.returncode != 0:
            return {"status": "error: " + done.stderr.strip().splitlines()[-1][:80]}
        return json.loads(done.stdout.strip().splitlines()[-1])


def _budgets(n: int) -> list[float]:
    """From one network and a half to every task on a half-size network of its own."""
    return sorted({1.5, 2.5, 4.0, n / 2})


def _instances(sizes: list[int]) -> list[tuple[str, dict, list[float]]]:
    out = [(f"planted n={n}", planted_problem(n, seed=n), _budgets(n)) for n in sizes]
    standley = standley_problem()
    if standley is not None:
        out.append(("Taskonomy setting 1 (val)", standley, [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0]))
    ettm1 = ettm1_problem()
    if ettm1 is not None:
        out.append(("ETTm1 (val gains)", ettm1, [1.0, 2.0, 3.0, 4.0]))
    return out


def _shown(rows: list[dict]) -> list[dict]:
    """``rows``, printed as they come (a run takes a while)."""
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def _versus(objective: float | None, reference: float | None, sense: str) -> float | None:
    """How much worse ``objective`` is than the reference optimum, relative (0 = equal)."""
    if objective is None or reference is None:
        return None
    worse = objective - reference if sense == "min_loss" else reference - objective
    return worse / max(abs(reference), 1e-9)


def explicit_rows(sizes: list[int] | None = None, *, previous_limit: float = 20.0,
                  previous_max_tasks: int = 12, reference_max_tasks: int = 12) -> list[dict]:
    """One row per instance, budget and method: ``instance``, ``n``, ``networks``, ``budget``,
    ``method`` (``auto``, ``previous bip``, ``previous branch_and_bound``, ``reference``), ``status``,
    ``proved_by``, ``objective``, ``gap``, ``vs_reference`` (relative difference of the objective from
    the reference optimum; positive = worse) and ``seconds`` (wall clock)."""
    rows: list[dict] = []
    with Previous() as previous, tempfile.TemporaryDirectory() as tmp:
        for name, data, budgets in _instances(sizes if sizes is not None else [8, 10, 12, 14, 16]):
            n, networks = len(data["tasks"]), len(data["networks"])
            common = {"instance": name, "n": n, "networks": networks}
            reference: list[float | None] = [None] * len(budgets)
            if n <= reference_max_tasks:
                started = time.perf_counter()
                reference = list(reference_optima(data, budgets))
                seconds = (time.perf_counter() - started) / len(budgets)
                rows += _shown([{**common, "budget": b, "method": "reference", "status": "optimal",
                                 "proved_by": "", "objective": r, "gap": 0.0, "vs_reference": 0.0,
                                 "seconds": seconds} for b, r in zip(budgets, reference, strict=True)])


            problem = parse_problem(data)
            for i, budget in enumerate(budgets):
                started = time.perf_counter()
                sol = solve(problem, budget)
                rows += _shown([{**common, "budget": budget, "method": "auto", "status": sol.status,
                             "proved_by": sol.proved_by, "objective": sol.objective, "gap": sol.gap,
                             "vs_reference": _versus(sol.objective, reference[i], data["objective"]),
                                 "seconds": time.perf_counter() - started}])
            if n > previous_max_tasks:
                continue
            problem_file = Path(tmp) / "problem.json"
            problem_file.write_text(json.dumps(data))
            for solver in ("bip", "branch_and_bound"):
                for i, budget in enumerate(budgets):
                    out = previous.solve(problem_file, budget, solver, previous_limit)
                    rows += _shown([{**common, "budget": budget, "method": f"previous {solver}",
                                 "status": out["status"], "proved_by": "", "objective": out.get("objective"),
                                 "gap": out.get("gap"),
                                 "vs_reference": _versus(out.get("objective"), reference[i],
                                                         data["objective"]),
                                 "seconds": out.get("seconds")}])
    return rows


def _subset_table(n: int, members: list[tuple[int, ...]], seed: int) -> CandidateTable:
    """A table with the given full-size networks (cost 1) and n half-size singles, planted losses."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, max(2, n // 4), n)
    base = rng.uniform(0.5, 1.5, n)
    rows = []
    for group in members:
        m = np.array(group)
        same = (cluster[m][:, None] == cluster[m][None, :]).sum(axis=1) - 1
        row = np.full(n, np.inf)
        row[m] = base[m] * (1 - 0.04 * same + 0.03 * (len(m) - 1 - same) + rng.normal(0, 0.02, len(m)))
        rows.append(row)
    for t in range(n):
        row = np.full(n, np.inf)
        row[t] = base[t] * 1.06
        rows.append(row)
    k = len(members)
    singles = tuple((t,) for t in range(n))
    return CandidateTable(tasks=tuple(f"t{i}" for i in range(n)), trains=(*members, *singles),
                          sizes=("full",) * k + ("half",) * n, costs=(1.0,) * k + (0.5,) * n,
                          loss=np.array(rows), sense=1)


#: the cutoff table runs the BIP on tables of at most this many networks (the first table already shows
#: the BIP on dense tables; building and solving larger ones takes minutes)
CUTOFF_BIP_MAX_NETWORKS = 5000


def cutoff_rows(dense_sizes: list[int], sparse: list[tuple[int, int]], bip_limit: float) -> list[dict]:
    """CPU seconds of the subset DP and of the BIP (``bip_limit`` s) on all-subset tables (``dense``) and
    on tables of ``k`` random full-size networks (``sparse``), budgets 2 and n / 2."""
    rows = []
    cases = [(n, "all subsets", [g for s in range(1, n + 1) for g in itertools.combinations(range(n), s)])
             for n in dense_sizes]
    for n, k in sparse:
        rng = np.random.default_rng(n * 1000 + k)
        groups: set[tuple[int, ...]] = set()
        while len(groups) < k:
            groups.add(tuple(sorted(rng.choice(n, int(rng.integers(1, n + 1)), replace=False).tolist())))
        cases.append((n, f"{k} random", sorted(groups)))
    for n, kind, members in cases:
        table = _subset_table(n, members, seed=n)
        scale = CostScale.for_costs(list(table.costs))
        for budget in (2.0, n / 2):
            units = scale.budget_units(budget)
            size = dp_size(table, scale, units)
            cpu = time.process_time()
            dp = SubsetDP(table, scale, units)
            dp.selection(units)
            dp_seconds = time.process_time() - cpu
            row = {"n": n, "table": kind, "networks": len(table), "budget": budget, "work": size.work,
                   "dp_seconds": dp_seconds, "ns_per_work": 1e9 * dp_seconds / size.work,
                   "bip_seconds": None, "bip_status": f"not run (> {CUTOFF_BIP_MAX_NETWORKS} networks)"}
            if len(table) <= CUTOFF_BIP_MAX_NETWORKS:
                cpu = time.process_time()
                raw = solve_table_bip(table, scale, units, bip_limit)
                row["bip_seconds"], row["bip_status"] = time.process_time() - cpu, raw.status
                value = sum(v for net in raw.networks for v in net.serves.values())
                if raw.status == "optimal" and abs(value - dp.optimum(units)) > 1e-9 * max(1, abs(value)):
                    row["bip_status"] += f" DISAGREES ({value} vs {dp.optimum(units)})"
            rows += _shown([row])
    return rows


def _fmt(value: object, spec: str = ".3g") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def report(rows: list[dict], cutoff: list[dict], facts: dict) -> str:
    lines = ["# Explicit selection: `auto` (subset DP / BIP) beside the previous methods", "",
             "Generated by `bench/selection_explicit.py`. "
             + ", ".join(f"{k}: {v}" for k, v in facts.items()),
             "", "## Instances", "",
             "`gap` = |bound − objective| / |objective| as reported; `vs ref` = how much worse than the "
             "independent reference optimum (relative; 0 = optimal). Previous methods ran from a checkout "
             f"of `{PREVIOUS_COMMIT[:10]}` with their time limit; `—` = not run.", "",
             "| instance | networks | budget | method | status | proved by | objective | gap | vs ref | s |",
             "|---|---:|---:|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['instance']} | {r['networks']} | {r['budget']:g} | {r['method']} | "
                     f"{r['status']} | {r['proved_by'] or ''} | {_fmt(r['objective'], '.6g')} | "
                     f"{_fmt(r['gap'], '.2e')} | {_fmt(r['vs_reference'], '.2e')} | "
                     f"{_fmt(r['seconds'], '.3f')} |")
    lines += ["", "## Cutoff of `auto` (CPU seconds, one process)", "",
              "| n | table | networks | budget | DPSize.work | subset DP s | ns / work | BIP s "
              "| BIP status |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in cutoff:
        lines.append(f"| {r['n']} | {r['table']} | {r['networks']} | {r['budget']:g} | {r['work']:.3g} | "
                     f"{r['dp_seconds']:.3f} | {r['ns_per_work']:.1f} | {_fmt(r['bip_seconds'], '.3f')} | "
                     f"{r['bip_status']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="8,10,12,14,16")
    parser.add_argument("--previous-limit", type=float, default=20.0, help="seconds per previous solve")
    parser.add_argument("--previous-max-tasks", type=int, default=12)
    parser.add_argument("--reference-max-tasks", type=int, default=12)
    parser.add_argument("--cutoff-sizes", default="10,12,14,16,17")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "selection_explicit.md"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows = explicit_rows([int(s) for s in args.sizes.split(",")], previous_limit=args.previous_limit,
                         previous_max_tasks=args.previous_max_tasks,
                         reference_max_tasks=args.reference_max_tasks)
    cutoff = cutoff_rows([int(s) for s in args.cutoff_sizes.split(",")],
                         [(14, 100), (14, 1000), (16, 100), (16, 1000), (18, 100), (18, 1000)], bip_limit=20)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    facts = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
             "machine": f"{platform.machine()}, {os.cpu_count()} cores",
             "load average before / after": f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f}",
             "bench wall time": f"{time.perf_counter() - started:.0f} s"}
    text = report(rows, cutoff, facts)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
