"""Thin helpers around OR-Tools' SCIP back end (pywraplp): single-threaded, exact gap, time limit."""

from __future__ import annotations

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


def has_solution(status: int) -> bool:
    return status in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE)
