"""Pairwise-affinity problems: every subset of tasks is an implicit candidate network.

``M[i][j]`` is the affinity onto task ``i`` from task ``j`` (TAG, Fifty et al. 2021, §3 and Table 7;
the diagonal is the self-affinity). A group ``G`` trains on its members; its score onto a member ``i`` is

    s(G, i) = mean_{j in G, j != i} A[i][j]

with ``A = M`` under ``singletons="forbid"`` (TAG's published rule: a task is never served alone, so
groups have at least two tasks) and ``A[i][j] = M[i][j] / M[i][i]`` under ``singletons="normalized"``
(the self-normalised transference of 002_c72e544f74afbb80.txt, appendix B, where a singleton scores 0).
Appendix B minimises ``1 - t(b,a)/t(a,a)``; maximising the normalised affinity is the same argmax.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from grouping.errors import InputError
from grouping.problem.explicit import Number


class AffinityMatrix(BaseModel):
    """The JSON ``affinity`` object: ``{"onto_row_from_column": M}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    onto_row_from_column: list[list[Number]]


class AffinityProblem(BaseModel):
    """Tasks, a pairwise affinity matrix and the singleton rule; each network costs ``network_cost``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[str] = Field(min_length=1)
    objective: Literal["max_affinity"] = "max_affinity"
    affinity: AffinityMatrix
    singletons: Literal["forbid", "normalized"] = "forbid"
    network_cost: Number = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _cross_checks(self) -> AffinityProblem:
        n = len(self.tasks)
        if len(set(self.tasks)) != n:
            raise InputError("tasks", "a task is listed twice")
        if any(not t for t in self.tasks):
            raise InputError("tasks", "task names must be non-empty")
        rows = self.affinity.onto_row_from_column
        if len(rows) != n or any(len(r) != n for r in rows):
            shape = f"{len(rows)} rows of lengths {sorted({len(r) for r in rows})}"
            raise InputError("affinity.onto_row_from_column",
                             f"must be a square {n}x{n} matrix (one row and column per task), got {shape}")
        if self.singletons == "forbid" and n < 2:
            raise InputError("singletons", "'forbid' needs at least two tasks (a task is never served alone)")
        if self.singletons == "normalized":
            bad = [self.tasks[i] for i in range(n) if not rows[i][i] > 0]
            if bad:
                raise InputError("affinity.onto_row_from_column", "'normalized' divides by the "
                                 f"self-affinity, which must be > 0 (task {bad[0]!r})")
        return self

    @property
    def min_group_size(self) -> int:
        """Smallest group that may serve a task: 2 under ``forbid``, 1 under ``normalized``."""
        return 2 if self.singletons == "forbid" else 1

    def score_matrix(self) -> np.ndarray:
        """``A`` of the module docstring, with a zero diagonal (a task adds nothing onto itself)."""
        m = np.asarray(self.affinity.onto_row_from_column, dtype=float)
        if self.singletons == "normalized":
            m = m / np.diag(m)[:, None]
        a = m.copy()
        np.fill_diagonal(a, 0.0)
        return a

    def to_dict(self) -> dict:
        """The affinity JSON form (``parse_problem`` reads it back)."""
        return self.model_dump(mode="json")
