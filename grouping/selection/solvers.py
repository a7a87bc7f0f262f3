"""The names of the exact solvers (``grouping.selection.dispatch`` maps each to its implementation).

A module of its own so that request schemas can name the solvers without loading OR-Tools or numpy."""

SOLVERS: tuple[str, ...] = ("bip", "branch_and_bound", "brute_force")
