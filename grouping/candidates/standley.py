"""Importer for Standley et al.'s per-network loss tables (format: ../shared/data/README.md).

Tab-separated, one column per task, an empty field where the network does not compute the task.
Row 1 holds the half-size single-task networks (cost 0.5; column ``i`` is task ``i``'s network); every
later row is one full-size network (cost 1) computing the tasks with a value (003_e1b8ce7dfcb85eaf.txt §3.1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from grouping.errors import InputError
from grouping.problem import CandidateNetwork, ExplicitProblem

#: Standley's five Taskonomy tasks in column order: segmentation, depth, normals, keypoints, edges
STANDLEY_TASKS: tuple[str, ...] = ("s", "d", "n", "k", "e")


def _cell(text: str, where: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(where, f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise InputError(where, f"not a finite number: {text!r}")
    return value


def read_standley_table(path: str | Path, tasks: Sequence[str] = STANDLEY_TASKS) -> ExplicitProblem:
    """Parse a Standley TSV table into an explicit ``min_loss`` problem (half-size singles first)."""
    path = Path(path)
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if len(lines) < 2:
        raise InputError(str(path), "needs the half-size row and at least one full-size network row")
    networks = []
    for row_no, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if len(fields) != len(tasks):
            raise InputError(f"{path}:{row_no}",
                             f"expected {len(tasks)} tab-separated fields, got {len(fields)}")
        cells = {t: _cell(f, f"{path}:{row_no}") for t, f in zip(tasks, fields, strict=True)}
        if row_no == 1:
            networks += [CandidateNetwork(tasks=[t], size="half", loss={t: v})
                         for t, v in cells.items() if v is not None]
            continue
        losses = {t: v for t, v in cells.items() if v is not None}
        if not losses:
            raise InputError(f"{path}:{row_no}", "empty row")
        networks.append(CandidateNetwork(tasks=list(losses), size="full", loss=losses))
    try:
        return ExplicitProblem(tasks=list(tasks), objective="min_loss", networks=networks)
    except ValueError as exc:
        raise InputError(str(path), str(exc)) from None
