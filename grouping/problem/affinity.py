"""Pairwise-affinity problems: every subset of tasks is an implicit candidate network.

``M[i][j]`` is the affinity onto task ``i`` from task ``j`` (TAG, Fifty et al. 2021, §3 and Table 7;
the diagonal is the self-affinity). A group ``G`` trains on its members; its score onto a member ``i`` is

    s(G, i) = mean_{j in G, j != i} A[i][j]

with ``A = M`` under ``singletons="forbid"`` (TAG's published rule: a task is never served alone, so
groups have at least two tasks) and ``A[i][j] = M[i][j] / M[i][i]`` under ``singletons="normalized"``
(the self-normalised transference of 002_c72e544f74afbb80.txt, appendix B, where a singleton scores 0).
Appendix B minimises ``1 - t(b,a)/t(a,a)``; maximising the normalised affinity is the same argmax.

Every group is a full-size network costing ``c = network_cost``. With ``half_singletons=True`` each task
may also be served alone by a half-size single-task network costing ``c / 2`` (Standley et al. 2020's
cost model, 003_e1b8ce7dfcb85eaf.txt §3.1 and §4.2: five half-sized single-task networks), scoring

    s({i}_half, i) = 0

onto its task: no transfer, the neutral value of TAG's ``Z`` (001_f26b0d32d2f30577.txt §4.1), of a
gradient cosine, and of the normalised rule's singleton. A selection of ``f`` groups and ``h`` half-size
singletons costs ``f c + h c / 2``. Under ``forbid`` the half-size singleton is the only way a task is
served alone; under ``normalized`` it dominates the full-size singleton (same score, half the cost), so
full-size singletons are then no candidates.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from grouping.errors import InputError
from grouping.problem.explicit import SIZE_COSTS, Number


class AffinityMatrix(BaseModel):
    """The JSON ``affinity`` object: ``{"onto_row_from_column": M}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    onto_row_from_column: list[list[Number]]


class AffinityProblem(BaseModel):
    """Tasks, a pairwise affinity matrix and the singleton rule; each group costs ``network_cost``, a
    half-size singleton (``half_singletons``) half of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[str] = Field(min_length=1)
    objective: Literal["max_affinity"] = "max_affinity"
    affinity: AffinityMatrix
    singletons: Literal["forbid", "normalized"] = "forbid"
    network_cost: Number = Field(default=1.0, gt=0)
    half_singletons: bool = Field(default=False, strict=True)

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
        if self.singletons == "forbid" and n < 2 and not self.half_singletons:
            raise InputError("singletons", "'forbid' needs at least two tasks (a task is never served alone) "
                             "unless 'half_singletons' is true")
        if self.singletons == "normalized":
            bad = [self.tasks[i] for i in range(n) if not rows[i][i] > 0]
            if bad:
                raise InputError("affinity.onto_row_from_column", "'normalized' divides by the "
                                 f"self-affinity, which must be > 0 (task {bad[0]!r})")
        return self

    @property
    def min_group_size(self) -> int:
        """Smallest full-size group that may serve a task: 1 under ``normalized`` without half-size
        singletons, else 2 (``forbid``, or a full-size singleton dominated by the half-size one)."""
        return 1 if self.singletons == "normalized" and not self.half_singletons else 2

    @property
    def serves_alone(self) -> bool:
        """Whether a task may be served alone (scoring 0): under ``normalized`` or by a half-size network."""
        return self.singletons == "normalized" or self.half_singletons

    @property
    def network_costs(self) -> dict[str, float]:
        """Cost per network size: ``{"full": c}``, and ``"half": c / 2`` with half singletons."""
        costs = {"full": float(self.network_cost)}
        if self.half_singletons:
            costs["half"] = float(self.network_cost) * SIZE_COSTS["half"] / SIZE_COSTS["full"]
        return costs

    def network_size(self, members: tuple[int, ...]) -> str:
        """Size of the network serving the group ``members``: a singleton is half-size when
        ``half_singletons`` (the full-size singleton is then no candidate), every other group full-size."""
        return "half" if self.half_singletons and len(members) == 1 else "full"

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
