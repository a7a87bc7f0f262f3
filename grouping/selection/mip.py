"""Thin helpers around OR-Tools' SCIP back end (pywraplp): single-threaded, exact gap, time limit."""

from __future__ import annotations

import threading
import time

from ortools.linear_solver import pywraplp


def new_scip(time_limit: float | None) -> pywraplp.Solver:
    """A fresh single-threaded SCIP model with an optional wall-clock limit in seconds."""
    solver = pywraplp.Solver.CreateSolver("SCIP")
    solver.SetNumThreads(1)
    if time_limit is not None:
        solver.SetTimeLimit(max(1, int(time_limit * 1000)))
    return solver


def solve_exact(solver: pywraplp.Solver) -> int:
    """Solve to a zero relative gap; returns the pywraplp status code."""
    params = pywraplp.MPSolverParameters()
    params.SetDoubleParam(params.RELATIVE_MIP_GAP, 0.0)
    return solver.Solve(params)


def solve_exact_by(solver: pywraplp.Solver, deadline: float | None) -> int:
    """:func:`solve_exact` stopped at ``deadline`` (``time.monotonic()``): the solver's own time limit
    is set to the time left, and a timer interrupts the solve at the deadline should the solver run
    past its limit (SCIP checks it only between steps). At or past the deadline nothing is solved and
    ``NOT_SOLVED`` is returned."""
    if deadline is None:
        return solve_exact(solver)
    left = deadline - time.monotonic()
    if left <= 0:
        return pywraplp.Solver.NOT_SOLVED
    solver.SetTimeLimit(max(1, int(1000 * left)))
    timer = threading.Timer(left, solver.InterruptSolve)
    timer.start()
    try:
        return solve_exact(solver)
    finally:
        timer.cancel()


def has_solution(status: int) -> bool:
    return status in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE)
