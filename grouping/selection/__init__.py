"""Exact network selection (issue 2): OR-Tools BIP / column generation, Standley's branch and bound,
brute force, budget arithmetic.

Exports load on first use (:mod:`grouping._lazy`): the solver names need neither OR-Tools nor numpy."""

from typing import TYPE_CHECKING

from grouping._lazy import lazy_exports

if TYPE_CHECKING:
    from grouping.selection.budget import InfeasibleBudget as InfeasibleBudget
    from grouping.selection.budget import parse_budgets as parse_budgets
    from grouping.selection.dispatch import min_feasible_budget as min_feasible_budget
    from grouping.selection.dispatch import solve as solve
    from grouping.selection.dispatch import solve_curve as solve_curve
    from grouping.selection.solvers import SOLVERS as SOLVERS
    from grouping.selection.trust import Trust as Trust
    from grouping.selection.trust import resampled_affinity as resampled_affinity
    from grouping.selection.trust import selection_trust as selection_trust

_EXPORTS = {
    "SOLVERS": "solvers",
    "InfeasibleBudget": "budget",
    "parse_budgets": "budget",
    "min_feasible_budget": "dispatch",
    "solve": "dispatch",
    "solve_curve": "dispatch",
    "Trust": "trust",
    "resampled_affinity": "trust",
    "selection_trust": "trust",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
