"""The names of the exact solvers (``grouping.selection.dispatch`` maps each to its implementation).

A module of its own so that request schemas can name the solvers without loading OR-Tools or numpy.

``auto`` (the default) lets the dispatcher pick the exact method per problem: for explicit tables the
dynamic program over task subsets (``subset_dp``) where its size allows, else the facility-location
BIP (``bip``); for affinity problems ``bip`` (column generation). A solution's ``proved_by`` names the
method that produced it."""

SOLVERS: tuple[str, ...] = ("auto", "bip", "subset_dp", "branch_and_bound", "brute_force")
DEFAULT_SOLVER = "auto"
