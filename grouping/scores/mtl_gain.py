"""True MTL gain G(a|b) (``000_e39fa9ea70ed03c5.txt`` eq. 5) from a network table.

    G(a|b) = (L_STL_a − L_MTL(ā,b)) / L_MTL(ā,b)      (reported in percent, as the paper's Table 1)

``L_STL_a`` is the loss of the full-size single-task network on a, ``L_MTL(ā,b)`` the loss on a of the
full-size network trained on {a, b}. Matrix orientation: ``M[i][j] = G(tasks[i] | tasks[j])`` (onto the
row from the column, as TAG's affinities); the diagonal is NaN.
"""

from __future__ import annotations

import numpy as np

from grouping.tables.table import NetworkTable, Split


def mtl_gain(table: NetworkTable, split: Split = "test") -> np.ndarray:
    """G(a|b) in percent for every ordered pair of ``table.tasks``, from ``split``'s losses (the paper
    uses test losses). The table must hold the single-task and pair networks (exhaustive or pairwise)."""
    tasks = table.tasks
    gain = np.full((len(tasks), len(tasks)), np.nan)
    for i, a in enumerate(tasks):
        stl = _loss(table, (a,), a, split)
        for j, b in enumerate(tasks):
            if i != j:
                mtl = _loss(table, (a, b), a, split)
                gain[i, j] = 100.0 * (stl - mtl) / mtl
    return gain


def _loss(table: NetworkTable, tasks: tuple[str, ...], task: str, split: Split) -> float:
    row = table.row(tasks, "full")
    return (row.val_loss if split == "val" else row.test_loss)[task]
