"""``AffinityCallback``: measure task affinity while a Lightning ``Trainer`` fits your ``LightningModule``.

Needs the ``lightning`` extra (``pip install 'taskgrouper[lightning]'``); nothing else in taskgrouper
imports this module. The callback keeps each training batch (``on_train_batch_start``) and, once per
optimizer step after Lightning's backward (``on_before_optimizer_step``), lets an
:class:`~grouping.affinity.tracker.AffinityTracker` measure on it through ``task_losses(module, batch)``
(default: the module's own ``task_losses(batch)`` method), a mapping from task name to that task's
loss. Each training epoch closes a trajectory point. Under a distributed strategy every rank measures
and agrees; with ``out`` rank 0 writes the run's JSON at the end of the fit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from grouping.affinity.run import AffinityRun
from grouping.affinity.tracker import AffinityTracker, Losses


class AffinityCallback(pl.Callback):
    """Measures ``methods`` between ``tasks`` on the parameters ``shared(module)`` returns, every
    ``every`` optimizer steps (see :class:`~grouping.affinity.tracker.AffinityTracker` for
    ``weights``); ``metadata`` (e.g. the model's name) goes into the result."""

    def __init__(
        self,
        tasks: Sequence[str],
        shared: Callable[[pl.LightningModule], Iterable[torch.nn.Parameter]],
        task_losses: Callable[[pl.LightningModule, Any], Losses] | None = None,
        *,
        every: int = 10,
        methods: Sequence[str] = ("tag_first_order",),
        weights: Mapping[str, float] | Sequence[float] | None = None,
        metadata: Mapping[str, Any] | None = None,
        out: str | Path | None = None,
    ) -> None:
        self.tasks, self.shared, self.every, self.methods = list(tasks), shared, every, methods
        self.task_losses = task_losses or (lambda module, batch: module.task_losses(batch))
        self.weights, self.metadata, self.out = weights, dict(metadata or {}), out
        self.tracker: AffinityTracker | None = None
        self._batch: Any = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        self.tracker = AffinityTracker(
            self.shared(pl_module), optimizer, self.tasks, every=self.every, methods=self.methods,
            weights=self.weights,
        )

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch = batch

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        batch = self._batch
        self._require().measure(lambda: self.task_losses(pl_module, batch))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._require().end_epoch()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.out is not None and trainer.is_global_zero:
            Path(self.out).write_text(json.dumps(self.result(type(pl_module).__name__).to_dict()))

    def result(self, model: str | None = None) -> AffinityRun:
        """The run measured so far (``model``: a name for the metadata)."""
        extra = {**({"model": model} if model else {}), "framework": "lightning", **self.metadata}
        return self._require().result(extra)

    def _require(self) -> AffinityTracker:
        if self.tracker is None:
            raise RuntimeError("the callback has not seen the start of training yet")
        return self.tracker
