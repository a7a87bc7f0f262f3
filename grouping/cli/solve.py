"""``taskgrouper solve`` and ``taskgrouper import-standley``.

``solve PROBLEM.json --budget B | --budgets START:STOP:STEP [--solver S] [--time-limit SECONDS]`` prints
one solution (or, with ``--budgets``, a JSON list of solutions) as JSON; ``import-standley VAL.tsv
[--hoa]`` prints the explicit problem form of a Standley table.

When the problem carries samples of its estimate (bootstrap draws of its losses,
``metadata.val_draws``, as ``taskgrouper affinity --method warm_start`` writes them; or the affinity
run's per-epoch matrices, ``metadata.trajectories``, as ``taskgrouper affinity`` writes them for the
affinity methods), every solution also has ``trust``: the selection
re-evaluated under each draw (:func:`grouping.selection.trust.selection_trust`; ``null`` for an
infeasible budget). Without draws the output is unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grouping.candidates import STANDLEY_TASKS, higher_order_approximation, read_standley_table
from grouping.errors import InputError
from grouping.problem import parse_problem
from grouping.selection import (
    SOLVERS,
    InfeasibleBudget,
    min_feasible_budget,
    parse_budgets,
    solve,
    solve_curve,
)
from grouping.selection.solvers import DEFAULT_SOLVER
from grouping.selection.trust import problem_samples, selection_trust


def _load_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise InputError("PROBLEM", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError("PROBLEM", f"{path} is not valid JSON: {exc}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _solve(args: argparse.Namespace) -> int:
    data = _load_json(args.problem)
    problem = parse_problem(data)
    samples = problem_samples(data) if isinstance(data, dict) else []

    def output(solution: Any) -> dict[str, Any]:
        out = solution.to_dict()
        if samples:
            feasible = solution.status != "infeasible"
            out["trust"] = selection_trust(solution, problem, samples).model_dump() if feasible else None
        return out

    if args.budget is not None:
        out: Any = output(solve(problem, args.budget, solver=args.solver, time_limit=args.time_limit))
    else:
        budgets = parse_budgets(args.budgets)
        curve = solve_curve(problem, budgets, solver=args.solver, time_limit=args.time_limit)
        if all(sol.status == "infeasible" for sol in curve):
            raise InfeasibleBudget(max(sol.budget for sol in curve), min_feasible_budget(problem))
        out = [output(sol) for sol in curve]
    print(json.dumps(out, indent=2))
    return 0


def _import_standley(args: argparse.Namespace) -> int:
    tasks = [t.strip() for t in args.tasks.split(",")]
    problem = read_standley_table(args.table, tasks)
    if args.hoa:
        problem = higher_order_approximation(problem)
    text = json.dumps(problem.to_dict(), indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
        if args.json:
            summary = {"out": str(args.output), "tasks": problem.tasks, "networks": len(problem.networks)}
            print(json.dumps(summary))
    else:
        print(text)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``solve`` and ``import-standley``."""
    p = subparsers.add_parser("solve", help="choose the networks to train under an inference-cost budget",
                              description="Solve a network-selection problem (explicit or affinity "
                              "JSON form) and print the solution as JSON.")
    p.add_argument("problem", metavar="PROBLEM.json", help="problem file ('-' reads standard input)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--budget", type=_number, help="inference-cost budget in full-network units, e.g. 2.5")
    which.add_argument("--budgets", metavar="START:STOP:STEP",
                       help="a budget curve, e.g. 1:5:0.5 (inclusive) or 1,2.5,4; prints a JSON list")
    p.add_argument("--solver", choices=SOLVERS, default=DEFAULT_SOLVER,
                   help=f"default: {DEFAULT_SOLVER} (the exact method picked per problem; the output's "
                   "proved_by names it)")
    p.add_argument("--time-limit", type=_number, metavar="S", help="seconds per budget; then the best "
                   "selection found so far is printed with status 'feasible' and its proven bound")
    p.add_argument("--json", action="store_true", help="print the result as JSON (always the format here)")
    p.set_defaults(handler=_solve)

    q = subparsers.add_parser("import-standley", help="convert a Standley et al. loss table to PROBLEM.json",
                              description="Read a Standley TSV table (row 1: half-size single-task networks, "
                              "then one full-size network per row) and print the explicit problem JSON.")
    q.add_argument("table", metavar="VAL.tsv")
    q.add_argument("--hoa", action="store_true",
                   help="replace networks of 3+ tasks by the Higher-Order Approximation from the pairs")
    q.add_argument("--tasks", default=",".join(STANDLEY_TASKS), help="column names (default: s,d,n,k,e)")
    q.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    q.add_argument("--json", action="store_true",
                   help="print the problem as JSON (always the format here; with -o a summary)")
    q.set_defaults(handler=_import_standley)
