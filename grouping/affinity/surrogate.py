"""The built-in surrogate training's affinity measurement: the training loop's ``StepObserver`` that
feeds an :class:`~grouping.affinity.tracker.AffinityTracker` on the network's shared backbone.

On a measured step it runs the forward pass itself in full precision, hands the per-task losses, the
backbone's output (the shared features) and a closure recomputing the losses on the batch to the
tracker, which does the training backward and scores the step. With ``held_out``
(``lookahead_batch="val"``) the k-th measured step's lookahead losses are measured on the k-th held-out
batch (:mod:`grouping.affinity.heldout`; k is checkpointed, so a resumed run draws the same batches).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from grouping.affinity.heldout import HeldOutBatches
from grouping.affinity.tracker import AffinityTracker
from grouping.data.spec import TaskSpec
from grouping.training.loop import batch_losses
from grouping.training.losses import task_loss
from grouping.training.model import MultiTaskNet


class SurrogateObserver:
    """Measures ``methods`` between ``tasks`` (with their weights) every ``every`` steps of
    :func:`grouping.training.loop.fit`; the tracker is made on the first measured step."""

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        methods: Sequence[str],
        every: int,
        held_out: HeldOutBatches | None = None,
    ) -> None:
        self.tasks = list(tasks)
        self.methods = list(methods)
        self.every = every
        self.held_out = held_out
        self.held_out_draws = 0  # held-out batches drawn so far, i.e. the index of the next
        self.tracker: AffinityTracker | None = None
        self._restored: dict[str, Any] | None = None

    def wants(self, step: int) -> bool:
        """Measure on steps 0, every, 2·every, …"""
        return step % self.every == 0

    def backward(
        self,
        model: MultiTaskNet,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor,
        y: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """The training backward of this (measured) step and its scores, before the optimizer steps."""
        tracker = self._tracker(model, optimizer)
        tasks = self.tasks
        with torch.autocast(x.device.type, enabled=False):
            rep = model.backbone(x)
            losses = [task_loss(t.loss, model.heads[t.name](rep), y[t.name]) for t in tasks]
            held = None
            lookahead = self.held_out is not None and {"tag", "tag_first_order"} & set(self.methods)
            if lookahead and bool(torch.isfinite(torch.stack(losses).detach()).all()):
                hx, hy = self.held_out.batch(self.held_out_draws, x, y)
                self.held_out_draws += 1
                held = lambda: batch_losses(model, tasks, hx, hy)  # noqa: E731
            return tracker.backward(
                losses, lambda: batch_losses(model, tasks, x, y), features=rep, held_out=held
            )

    def _tracker(self, model: MultiTaskNet, optimizer: torch.optim.Optimizer) -> AffinityTracker:
        if self.tracker is None or self.tracker.optimizer is not optimizer:
            if self.tracker is not None:  # a new optimizer: keep what was measured so far
                self._restored = self.tracker.state_dict()
            self.tracker = AffinityTracker(
                model.backbone.parameters(),
                optimizer,
                [t.name for t in self.tasks],
                every=1,  # the loop hands over only the steps that ``wants`` chose
                methods=self.methods,
                weights=[t.weight for t in self.tasks],
            )
            if self._restored is not None:
                self.tracker.load_state_dict(self._restored)
        return self.tracker

    @property
    def steps(self) -> int:
        """Measured steps that were scored."""
        return self.tracker.steps if self.tracker is not None else 0

    def means(self) -> dict[str, torch.Tensor]:
        """Each method's mean over the scored steps."""
        assert self.tracker is not None, "no step was measured"
        return self.tracker.means()

    @property
    def trajectories(self) -> dict[str, list[torch.Tensor]]:
        """One matrix per finished epoch and method."""
        return self.tracker.trajectories if self.tracker is not None else {m: [] for m in self.methods}

    def end_epoch(self, epoch: int) -> None:
        """Close the epoch's trajectory point."""
        if self.tracker is not None:
            self.tracker.end_epoch()

    def state_dict(self) -> dict[str, Any]:
        """The tracker's accumulators and the held-out draws, for the epoch-boundary checkpoint."""
        state = self.tracker.state_dict() if self.tracker is not None else dict(self._restored or {})
        return {**state, "held_out_draws": self.held_out_draws}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (taken at an epoch boundary)."""
        self._restored = dict(state)
        self.held_out_draws = state.get("held_out_draws", 0)
        if self.tracker is not None:
            self.tracker.load_state_dict(state)
