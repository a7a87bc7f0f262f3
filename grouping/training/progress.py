"""What a long run reports while it works, and how it is stopped."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Progress:
    """A progress report: ``fraction`` of the planned steps done (1.0 at the end, also after early
    stopping), the current ``epoch`` (1-based) and global ``step``, the planned ``total_steps`` and the
    mean per-task training ``losses`` since the previous report."""

    fraction: float
    epoch: int
    step: int
    total_steps: int
    losses: dict[str, float] = field(default_factory=dict)


class Cancelled(Exception):
    """Raised inside a run when its ``should_cancel()`` returned True (checked before every step)."""
