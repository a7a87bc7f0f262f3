"""Taxonomical distance (TD, ``000_e39fa9ea70ed03c5.txt`` §3.1 and Table 6), from a user-given tree.

The tree is a parent map ``{node: parent}`` (a root maps to ``None`` or is simply absent as a key);
tasks are nodes of it. TD(a, b) = −(number of edges on the tree path between a and b), multiplied by
−1 as in the paper so that higher means more affinity. Symmetric, in ]−∞, 0]; NaN diagonal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from grouping.errors import InputError
from grouping.scores.pairwise import symmetric_matrix


def ancestry(node: str, parents: Mapping[str, str | None]) -> list[str]:
    """``node`` and its ancestors up to the root, nearest first; a cycle is an ``InputError``."""
    path = [node]
    while parents.get(path[-1]) is not None:
        parent = parents[path[-1]]
        if not isinstance(parent, str) or not parent:
            raise InputError(f"tree.{path[-1]}", f"a parent must be a node name, got {parent!r}")
        if parent in path:
            raise InputError("tree", f"the parent map has a cycle through {parent!r}")
        path.append(parent)
    return path


def tree_distance(a: str, b: str, parents: Mapping[str, str | None]) -> int:
    """Edges on the path between ``a`` and ``b`` (via their lowest common ancestor)."""
    up_a, up_b = ancestry(a, parents), ancestry(b, parents)
    depth_b = {node: k for k, node in enumerate(up_b)}
    for k, node in enumerate(up_a):
        if node in depth_b:
            return k + depth_b[node]
    raise InputError("tree", f"tasks {a!r} and {b!r} have no common ancestor (give the tree one root)")


def taxonomical_distance(tasks: Sequence[str], parents: Mapping[str, str | None]) -> np.ndarray:
    """M[i][j] = −tree_distance(tasks[i], tasks[j]); every task must be a node of the tree."""
    nodes = set(parents) | {p for p in parents.values() if p is not None}
    missing = [t for t in tasks if t not in nodes]
    if missing:
        raise InputError("tree", f"task {missing[0]!r} is not a node of the taxonomy tree")
    return symmetric_matrix(tasks, lambda a, b: -float(tree_distance(a, b, parents)))
