"""``AffinityTracker``: task affinity measured inside any PyTorch training loop.

The tracker knows only the shared parameters θ_s, the optimizer, the task names and their loss weights
w_t; the model may have any layout and each task any loss. Every ``every``-th optimizer step it
measures, before the optimizer steps:

- the per-task gradients ∇_{θ_s}(w_t L_t) (:mod:`grouping.affinity.gradients`);
- ``tag`` (TAG eq. 1): Z_{i→j} = 1 − L_j(θ_{s|i}) / L_j(θ_s), θ_{s|i} the step the optimizer would take
  from task i's gradient alone (:mod:`grouping.affinity.lookahead`), the losses recomputed by the
  caller's closure;
- ``tag_first_order``: ⟨∇_{θ_s} L_j, θ_s − θ_{s|i}⟩ / L_j, its first-order expansion;
- ``grad_cosine``: the cosine of the per-task gradients.

Each matrix is stored as M[j][i] = Z_{i→j} (row = onto, column = from), averaged over the measured
steps (TAG eq. 2) and per epoch (:meth:`AffinityTracker.end_epoch`, TAG fig. 4).

Two ways to feed it. In a loop you own, :meth:`AffinityTracker.backward` takes the per-task losses of
the training forward (graph alive) and does the training backward of Σ_t w_t L_t itself, after reading
the per-task gradients from the same graph. Where a framework does the backward (Lightning, Hugging
Face), :meth:`AffinityTracker.measure` is called after it and before ``optimizer.step()``, and obtains
the per-task losses from the closure (one more forward on measured steps). Either way nothing the
optimizer will step on is touched: the training gradients come from an ordinary ``backward()``, so
DistributedDataParallel's all-reduce, gradient accumulation and gradient scaling work as without the
tracker, and the lookahead leaves parameters, buffers, optimizer state and random generators as it
found them.

Under ``torch.distributed`` (every rank calls the tracker on the same steps with a local batch of the
same size, losses being batch means) the per-task gradients and the losses are averaged over the ranks
before scoring: they are then those of the global batch, so every rank computes the same scores, equal
to one process's on the global batch, and the accumulated matrices agree on every rank. The closures
should call the wrapped module (``ddp.module``) so that the lookahead forwards are not collective.

The held-out lookahead (``lookahead_batch="val"``, :mod:`grouping.affinity.heldout`): ``held_out`` is a
closure returning the losses on another batch V; ``tag`` and ``tag_first_order`` then measure L_j on V
(the step u_i still comes from the training batch) and ``grad_cosine`` stays on the training batch.
Measurement runs in full precision (autocast off): eq. 1 compares two nearly equal losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from grouping.affinity.grad_cosine import cosine_step
from grouping.affinity.gradients import TaskGradients, task_gradients
from grouping.affinity.lookahead import SIMULATED, lookahead_losses, lookahead_updates, side_effects_undone
from grouping.affinity.methods import AFFINITY_METHODS
from grouping.affinity.run import AffinityRun
from grouping.affinity.tag import tag_step
from grouping.affinity.tag_first_order import first_order_inner, first_order_step
from grouping.errors import InputError

#: per-task losses: a mapping by task name (extra keys ignored) or a sequence in task order
Losses = Mapping[str, torch.Tensor] | Sequence[torch.Tensor] | torch.Tensor
Closure = Callable[[], Losses]


class AffinityTracker:
    """Measures ``methods`` between ``tasks`` on the ``shared`` parameters every ``every`` optimizer
    steps (steps 0, every, 2·every, …). ``weights`` are the tasks' loss weights w_t (a mapping by
    name or a sequence in task order; default 1): the training loss is Σ_t w_t L_t and task i's
    lookahead step is the one its share w_i ∇L_i of the training gradient makes."""

    def __init__(
        self,
        shared: Iterable[torch.nn.Parameter],
        optimizer: torch.optim.Optimizer,
        tasks: Sequence[str],
        *,
        every: int = 10,
        methods: Sequence[str] = ("tag_first_order",),
        weights: Mapping[str, float] | Sequence[float] | None = None,
    ) -> None:
        self.shared = [p for p in shared if p.requires_grad]
        if not self.shared:
            raise InputError("shared", "no shared parameter that requires a gradient")
        stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if any(id(p) not in stepped for p in self.shared):
            raise InputError("shared", "every shared parameter must be one the optimizer steps")
        self.tasks = list(tasks)
        if len(self.tasks) < 2 or len(set(self.tasks)) != len(self.tasks):
            raise InputError("tasks", "affinity needs at least two distinct task names")
        chosen = [methods] if isinstance(methods, str) else list(dict.fromkeys(methods))
        unknown = [m for m in chosen if m not in AFFINITY_METHODS]
        if not chosen or unknown:
            raise InputError("methods", f"choose from {list(AFFINITY_METHODS)} (got {chosen})")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InputError("every", f"must be a positive integer, got {every!r}")
        self.optimizer, self.methods, self.every = optimizer, chosen, every
        if weights is None:
            values = [1.0] * len(self.tasks)
        elif isinstance(weights, Mapping):
            values = [float(weights.get(t, 1.0)) for t in self.tasks]
        else:
            values = [float(w) for w in weights]
        if len(values) != len(self.tasks) or not all(math.isfinite(w) and w > 0 for w in values):
            raise InputError("weights", "one finite positive weight per task")
        self.weights = torch.tensor(values, dtype=torch.float64)
        self.calls = 0  # optimizer steps seen (the index of the next)
        self._batched = True
        n = len(self.tasks)
        self.totals = {m: torch.zeros(n, n, dtype=torch.float64) for m in self.methods}
        self.steps = 0
        self.epoch_totals = {m: torch.zeros(n, n, dtype=torch.float64) for m in self.methods}
        self.epoch_steps = 0
        self.trajectories: dict[str, list[torch.Tensor]] = {m: [] for m in self.methods}

    def wants(self, step: int | None = None) -> bool:
        """Whether optimizer step ``step`` (default: the next one) is measured."""
        return (self.calls if step is None else step) % self.every == 0

    def backward(
        self,
        losses: Losses,
        closure: Closure | None = None,
        *,
        features: torch.Tensor | None = None,
        held_out: Closure | None = None,
    ) -> torch.Tensor:
        """The training backward of Σ_t w_t L_t for the per-task ``losses`` of the training forward;
        on a measured step first the per-task gradients from the same graph, and after the backward
        the scores (``closure`` recomputes the per-task losses on the training batch for ``tag``;
        ``features``: the shared representation every task reads, which makes the per-task gradients
        cheaper, see :mod:`grouping.affinity.gradients`). Call it where ``loss.backward()`` would be,
        before ``optimizer.step()``. Returns the per-task losses, detached (task order)."""
        vector = self._vector(losses)
        weights = self.weights.to(device=vector.device, dtype=vector.dtype)
        grads = None
        if self.wants() and bool(torch.isfinite(self._mean(vector.detach())).all()):
            with torch.autocast(vector.device.type, enabled=False):
                grads = self._gradients(vector, features)
        (weights * vector).sum().backward()
        if grads is not None:
            self._score(self._averaged(grads), closure, held_out)
        self.calls += 1
        return vector.detach()

    def measure(self, closure: Closure, *, held_out: Closure | None = None) -> bool:
        """For a loop whose backward a framework does: call once per optimizer step, after the backward
        and before ``optimizer.step()``. On a measured step ``closure`` gives the per-task losses on the
        training batch at θ_s (its forward's buffer updates undone), from which the per-task gradients
        come, and the scores are taken. Returns whether this step was measured."""
        measured = self.wants()
        if measured:
            with torch.autocast(self.shared[0].device.type, enabled=False):
                with side_effects_undone(self.shared):  # buffers restored after the backward passes
                    vector = self._vector(closure())
                    finite = bool(torch.isfinite(self._mean(vector.detach())).all())
                    grads = self._gradients(vector) if finite else None
                    del vector
                if grads is not None:
                    self._score(self._averaged(grads), closure, held_out)
        self.calls += 1
        return measured

    def _score(self, grads: TaskGradients, closure: Closure | None, held_out: Closure | None) -> None:
        """Score one step from its (rank-averaged) per-task gradients."""
        first_order = "tag_first_order" in self.methods
        lookahead = "tag" in self.methods
        measured_on, onto, losses = closure, grads, grads.losses
        if held_out is not None and (first_order or lookahead):
            measured_on = held_out
            if first_order:
                with side_effects_undone(self.shared):
                    vector = self._vector(held_out())
                    onto = self._averaged(self._gradients(vector))
                    del vector
                losses = onto.losses
            else:
                with torch.no_grad(), side_effects_undone(self.shared):
                    losses = self._mean(self._vector(held_out()))
            if not bool(torch.isfinite(losses).all()):
                return  # a held-out loss is not finite: no score for this step from any method
        if lookahead and measured_on is None:
            raise InputError("closure", "tag needs a closure that recomputes the per-task losses")
        scores: dict[str, torch.Tensor] = {}
        if "grad_cosine" in self.methods:
            scores["grad_cosine"] = cosine_step(grads.gram())
        updates = lookahead_updates(self.optimizer, self.shared, grads.shared) if lookahead else None
        if first_order:
            inner = first_order_inner(self.optimizer, self.shared, grads, updates, onto=onto)
            scores["tag_first_order"] = first_order_step(inner, losses)
        if updates is not None:
            after = lookahead_losses(self.shared, updates, lambda: self._vector(measured_on()))
            scores["tag"] = tag_step(self._mean(after), losses)
        for method, score in scores.items():
            value = score.detach().to("cpu", torch.float64)
            self.totals[method] += value
            self.epoch_totals[method] += value
        self.steps += 1
        self.epoch_steps += 1

    def _gradients(self, losses: torch.Tensor, features: torch.Tensor | None = None) -> TaskGradients:
        """:func:`task_gradients`, batched until the model shows an operation without a batching rule."""
        grads = task_gradients(losses, self.shared, self.weights, features, batched=self._batched)
        self._batched = grads.batched
        return grads

    def _vector(self, losses: Losses) -> torch.Tensor:
        """The per-task losses as one (T,) tensor in task order."""
        if isinstance(losses, Mapping):
            missing = [t for t in self.tasks if t not in losses]
            if missing:
                raise InputError("losses", f"no loss for task {missing[0]!r} (tasks: {self.tasks})")
            items = [losses[t] for t in self.tasks]
        elif isinstance(losses, torch.Tensor):
            items = list(losses.reshape(-1))
        else:
            items = list(losses)
        if len(items) != len(self.tasks) or any(torch.as_tensor(v).numel() != 1 for v in items):
            raise InputError("losses", f"one scalar loss per task ({len(self.tasks)}), got {len(items)}")
        return torch.stack([v.reshape(()) for v in items])

    def _averaged(self, grads: TaskGradients) -> TaskGradients:
        """``grads`` averaged over the ranks of ``torch.distributed`` (unchanged in one process)."""
        if not _distributed():
            return grads
        flat = torch.cat([grads.losses.reshape(-1)] + [g.reshape(-1) for g in grads.shared])
        flat = self._mean(flat)
        losses, rest = flat[: len(self.tasks)], flat[len(self.tasks) :]
        shared, start = [], 0
        for g in grads.shared:
            shared.append(rest[start : start + g.numel()].view_as(g))
            start += g.numel()
        return TaskGradients(losses, grads.weights, shared)

    @staticmethod
    def _mean(tensor: torch.Tensor) -> torch.Tensor:
        """The mean of ``tensor`` over the ranks of ``torch.distributed`` (itself in one process)."""
        if not _distributed():
            return tensor
        tensor = tensor.detach().clone()
        dist.all_reduce(tensor)
        return tensor / dist.get_world_size()

    def end_epoch(self) -> None:
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
        """The training-level scores: each method's mean over all measured steps (NaN before any)."""
        scale = 1.0 / self.steps if self.steps else math.nan
        return {m: self.totals[m] * scale for m in self.methods}

    def result(self, metadata: Mapping[str, Any] | None = None) -> AffinityRun:
        """The scores so far as an :class:`AffinityRun` (the same on every rank). An epoch in progress
        (measured steps after the last :meth:`end_epoch`) is closed in the trajectories of the result
        only. ``metadata`` (e.g. the model's name) is added to what the tracker records."""
        trajectories = {m: [t.numpy() for t in self.trajectories[m]] for m in self.methods}
        if self.epoch_steps:
            for m in self.methods:
                trajectories[m].append((self.epoch_totals[m] / self.epoch_steps).numpy())
        recorded = {
            "methods": list(self.methods),
            "orientation": "onto_row_from_column",
            "optimizer": type(self.optimizer).__name__,
            "lookahead": "simulated" if type(self.optimizer) in SIMULATED else "optimizer step",
            "every": self.every,
            "affinity_steps": self.steps,
            "training_steps": self.calls,
            "task_weights": self.weights.tolist(),
            "shared_parameters": sum(p.numel() for p in self.shared),
            "world_size": dist.get_world_size() if _distributed() else 1,
        }
        return AffinityRun(
            tasks=list(self.tasks),
            matrices={m: np.asarray(v.numpy(), dtype=float) for m, v in self.means().items()},
            trajectories=trajectories,
            metadata={**recorded, **dict(metadata or {})},
        )

    def state_dict(self) -> dict[str, Any]:
        """Accumulators and trajectories, for a checkpoint taken at an epoch boundary."""
        return {
            "totals": self.totals,
            "steps": self.steps,
            "trajectories": self.trajectories,
            "calls": self.calls,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.totals = state["totals"]
        self.steps = state["steps"]
        self.trajectories = state["trajectories"]
        self.calls = state.get("calls", self.calls)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
