"""Thin helpers around the solver back ends: OR-Tools' SCIP (pywraplp; single-threaded, exact gap, time
limit) and HiGHS (silent, single-threaded LPs)."""

from __future__ import annotations

import ctypes
import os
import threading
import time

import highspy
from ortools.linear_solver import pywraplp

_first_highs = threading.Lock()
_banner_written = False


def new_highs() -> highspy.Highs:
    """A silent, single-threaded HiGHS instance.

    HiGHS writes its banner to the C-level standard output when a process creates its first instance,
    before any option can be set (it would precede, say, ``taskgrouper solve``'s JSON); that first
    instance is therefore created with file descriptor 1 pointed at ``/dev/null`` (C buffers flushed
    before it is restored)."""
    global _banner_written
    with _first_highs:
        if _banner_written:
            highs = highspy.Highs()
        else:
            libc = ctypes.CDLL(None)
            libc.fflush(None)
            saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, 1)
                highs = highspy.Highs()
                libc.fflush(None)
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                os.close(null)
            _banner_written = True
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("threads", 1)
    return highs


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
