"""A table of trained candidate networks and its explicit problem form (Standley et al. 2020, §3).

Each row is one trained network with its per-task validation and test losses. Selection runs on the
validation losses and results are reported on the test losses, as Standley does; :meth:`to_problem`
writes either as the explicit ``min_loss`` form ``taskgrouper solve`` reads; a ``pairwise`` table's form
adds the Higher-Order Approximation of every 3+-task network (§3.3.2). Costs are Standley's
(full 1.0, half 0.5; ``cost="standley"``) or the measured multiply-add ratio (``cost="measured"``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from grouping.candidates import higher_order_approximation
from grouping.errors import InputError
from grouping.problem import SIZE_COSTS, CandidateNetwork, ExplicitProblem
from grouping.tables.jobs import TrainedNetwork

Split = Literal["val", "test"]
CostRule = Literal["standley", "measured"]


@dataclass(frozen=True)
class TableRow:
    """One trained network: its tasks and size, losses on both splits, measured cost, epochs and time."""

    tasks: tuple[str, ...]
    size: str
    val_loss: dict[str, float]
    test_loss: dict[str, float]
    measured_cost: float
    epochs_run: int
    seconds: float
    val_draws: dict[str, list[float]] | None = None

    @classmethod
    def from_trained(cls, net: TrainedNetwork) -> TableRow:
        return cls(net.job.tasks, net.job.size, net.val_loss, net.test_loss, net.cost, net.epochs_run,
                   net.seconds, net.val_draws)


@dataclass
class NetworkTable:
    """The trained networks of one method on one task set, with how they were trained (``metadata``)."""

    tasks: list[str]
    method: str
    rows: list[TableRow]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_problem(self, split: Split = "val", cost: CostRule = "standley") -> ExplicitProblem:
        """The explicit ``min_loss`` problem on ``split``'s losses with ``cost``'s network costs."""
        if split not in ("val", "test"):
            raise InputError("split", f"must be 'val' or 'test', got {split!r}")
        if cost not in ("standley", "measured"):
            raise InputError("cost", f"must be 'standley' or 'measured', got {cost!r}")
        networks = [
            CandidateNetwork(
                tasks=list(row.tasks), size=row.size,
                cost=SIZE_COSTS[row.size] if cost == "standley" else round(row.measured_cost, 6),
                loss=row.val_loss if split == "val" else row.test_loss)
            for row in self.rows
        ]
        problem = ExplicitProblem(tasks=self.tasks, objective="min_loss", networks=networks)
        return higher_order_approximation(problem) if self.method == "pairwise" else problem

    def val_samples(self, cost: CostRule = "standley") -> list[ExplicitProblem]:
        """The validation problem under each bootstrap draw of the rows' validation losses (empty when
        the table was trained without ``val_draws``); HOA is re-derived per draw for a pairwise table."""
        if any(row.val_draws is None for row in self.rows):
            return []
        draws = len(next(iter(self.rows[0].val_draws.values())))
        samples = []
        for k in range(draws):
            rows = [replace(row, val_loss={t: v[k] for t, v in row.val_draws.items()}) for row in self.rows]
            samples.append(NetworkTable(self.tasks, self.method, rows).to_problem("val", cost))
        return samples

    def problem_document(self, split: Split = "val", cost: CostRule = "standley", *,
                         normalize: Literal["none", "stl"] = "none", draw_digits: int = 6) -> dict[str, Any]:
        """The explicit problem JSON ``taskgrouper solve`` reads: :meth:`to_problem` of ``split`` with
        ``normalize`` (``"stl"``: losses relative to each task's full-size single-task row), plus
        ``metadata`` — the table's metadata and ``method``, and for ``split="val"``, when the rows hold
        bootstrap draws, ``val_draws``: one map per entry of ``networks`` (same order) from each task it
        serves to its draws of the validation loss (raw, like ``loss``; rounded to ``draw_digits``
        significant digits), which :func:`grouping.selection.trust.problem_samples` turns back into
        samples of the problem. ``InputError`` when the problem does not validate (e.g. ``"stl"`` without
        a single-task row for every task)."""
        from grouping.problem import parse_problem

        problem = self.to_problem(split, cost)
        data: dict[str, Any] = {**problem.to_dict(), "normalize": normalize}
        parse_problem(data)
        metadata: dict[str, Any] = {**self.metadata, "method": self.method}
        samples = self.val_samples(cost) if split == "val" else []
        if samples:
            metadata["val_draws"] = [
                {t: [float(f"{sample.networks[i].values[t]:.{draw_digits}g}") for sample in samples]
                 for t in net.values}
                for i, net in enumerate(problem.networks)
            ]
        return {**data, "metadata": metadata}

    def row(self, tasks: tuple[str, ...] | list[str], size: str = "full") -> TableRow:
        """The row training exactly ``tasks`` at ``size``."""
        wanted = frozenset(tasks)
        for row in self.rows:
            if frozenset(row.tasks) == wanted and row.size == size:
                return row
        raise InputError("tasks", f"the {self.method} table has no {size} network training {sorted(wanted)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (for caching; :meth:`from_dict` reads it back)."""
        return {"tasks": self.tasks, "method": self.method, "rows": [asdict(row) for row in self.rows],
                "metadata": self.metadata}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkTable:
        rows = [TableRow(**{**row, "tasks": tuple(row["tasks"])}) for row in data["rows"]]
        return cls(list(data["tasks"]), data["method"], rows, dict(data.get("metadata", {})))
