"""Exact network selection (issue 2): OR-Tools BIP / column generation, Standley's branch and bound,
brute force, budget arithmetic."""

from grouping.selection.budget import InfeasibleBudget, parse_budgets
from grouping.selection.dispatch import SOLVERS, min_feasible_budget, solve, solve_curve
from grouping.selection.trust import Trust, resampled_affinity, selection_trust

__all__ = ["SOLVERS", "InfeasibleBudget", "Trust", "min_feasible_budget", "parse_budgets",
           "resampled_affinity", "selection_trust", "solve", "solve_curve"]
