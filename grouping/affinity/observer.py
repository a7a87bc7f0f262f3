"""The step observer that measures affinities during one training run.

Every ``every``-th step it replaces the ordinary backward pass: one batched backward gives the per-task
gradients (whose weighted sum is the training gradient, so no extra backward is needed), then each
requested estimator scores the step before the optimizer applies it. Scores are averaged over all
measured steps (TAG eq. 2) and, per epoch, kept as a trajectory (TAG fig. 4). Measurement runs in
full precision, also under bf16 autocast, because eq. 1 compares two nearly equal losses.

With ``held_out`` (``lookahead_batch="val"``, :mod:`grouping.affinity.heldout`) the lookahead scores
measure L_j on a validation batch V instead of the training batch X: ``tag`` is
1 − L_j(V, θ_{s|i}) / L_j(V, θ_s) and ``tag_first_order`` ⟨∇L_j(V, θ_s), u_i⟩ / L_j(V, θ_s), where u_i is
still the step from task i's gradient on X (one more batched backward on V gives ∇L_j(V, θ_s)).
``grad_cosine`` stays on X, and the training gradient is X's in both cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from grouping.affinity.grad_cosine import cosine_step
from grouping.affinity.gradients import ParameterLayout, TaskGradients, task_gradients
from grouping.affinity.heldout import HeldOutBatches
from grouping.affinity.lookahead import lookahead_losses, simulated_updates
from grouping.affinity.tag import tag_step
from grouping.affinity.tag_first_order import first_order_inner, first_order_step
from grouping.data.spec import TaskSpec
from grouping.training.loop import batch_losses
from grouping.training.model import MultiTaskNet


class AffinityObserver:
    """Accumulates the step scores of ``methods`` (a subset of ``AFFINITY_METHODS``) for ``tasks``;
    with ``held_out`` the lookahead losses are measured on its batches (see the module docstring)."""

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
        self.held_out_draws = 0  # held-out batches drawn so far, i.e. the index of the next; checkpointed
        self.weights = torch.tensor([t.weight for t in self.tasks])
        self._model: MultiTaskNet | None = None
        self._layout: ParameterLayout | None = None  # of self._model, made on its first measured step
        self._device_weights = self.weights
        n = len(tasks)
        self.totals = {m: torch.zeros(n, n, dtype=torch.float64) for m in methods}
        self.steps = 0
        self.epoch_totals = {m: torch.zeros(n, n, dtype=torch.float64) for m in methods}
        self.epoch_steps = 0
        self.trajectories: dict[str, list[torch.Tensor]] = {m: [] for m in methods}

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
        """Set the training gradients from the per-task ones and score this step (before it is taken)."""
        if self._layout is None or self._model is not model:
            self._model, self._layout = model, ParameterLayout.of(model, self.tasks)
            self._device_weights = self.weights.to(x.device)  # not a host-to-device copy every step
        layout = self._layout
        with torch.autocast(x.device.type, enabled=False):
            grads = task_gradients(model, self.tasks, self._device_weights, x, y, layout)
            for p, g in zip(layout.parameters, grads.training, strict=True):
                p.grad = g
            if torch.isfinite(grads.losses).all():
                self._score(model, optimizer, layout, grads, x, y)
        return grads.losses

    def _score(
        self,
        model: MultiTaskNet,
        optimizer: torch.optim.Optimizer,
        layout: ParameterLayout,
        grads: TaskGradients,
        x: torch.Tensor,
        y: dict[str, torch.Tensor],
    ) -> None:
        shared = layout.shared
        first_order = "tag_first_order" in self.methods
        # the batch the lookahead losses are measured on, its losses at θ_s and (first order) gradients
        mx, my, losses, onto = x, y, grads.losses, grads
        if self.held_out is not None and (first_order or "tag" in self.methods):
            mx, my = self.held_out.batch(self.held_out_draws, x, y)
            self.held_out_draws += 1
            if first_order:
                onto = task_gradients(model, self.tasks, self._device_weights, mx, my, layout, training=False)
                losses = onto.losses
            else:
                with torch.no_grad():
                    losses = batch_losses(model, self.tasks, mx, my)
            if not torch.isfinite(losses).all():
                return  # a held-out loss is not finite: no score for this step from any method
        scores: dict[str, torch.Tensor] = {}
        if "grad_cosine" in self.methods:
            scores["grad_cosine"] = cosine_step(grads.gram())
        updates = simulated_updates(optimizer, shared, grads.shared) if "tag" in self.methods else None
        if first_order:
            inner = first_order_inner(optimizer, shared, grads, updates, onto=onto)
            scores["tag_first_order"] = first_order_step(inner, losses)
        if updates is not None:
            scores["tag"] = tag_step(lookahead_losses(model, self.tasks, updates, mx, my), losses)
        for method, score in scores.items():
            value = score.detach().to("cpu", torch.float64)
            self.totals[method] += value
            self.epoch_totals[method] += value
        self.steps += 1
        self.epoch_steps += 1

    def end_epoch(self, epoch: int) -> None:
        """Close the epoch's trajectory point (the mean of its measured steps; NaN when it had none)."""
        for method in self.methods:
            point = (
                self.epoch_totals[method] / self.epoch_steps
                if self.epoch_steps
                else torch.full_like(self.epoch_totals[method], float("nan"))
            )
            self.trajectories[method].append(point)
            self.epoch_totals[method].zero_()
        self.epoch_steps = 0

    def means(self) -> dict[str, torch.Tensor]:
        """The training-level scores: each method's mean over all measured steps."""
        return {m: self.totals[m] / max(self.steps, 1) for m in self.methods}

    def state_dict(self) -> dict[str, Any]:
        """Accumulators and trajectories, for the epoch-boundary checkpoint."""
        return {
            "totals": self.totals,
            "steps": self.steps,
            "trajectories": self.trajectories,
            "held_out_draws": self.held_out_draws,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (taken at an epoch boundary)."""
        self.totals = state["totals"]
        self.steps = state["steps"]
        self.trajectories = state["trajectories"]
        self.held_out_draws = state.get("held_out_draws", 0)
