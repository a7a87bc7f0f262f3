"""``AffinityTrainerCallback``: measure task affinity while a Hugging Face ``Trainer`` trains your model.

Needs the ``transformers`` extra (``pip install 'taskgrouper[transformers]'``); nothing else in
taskgrouper imports this module. A ``TrainerCallback`` does not see the batches, so the callback keeps
the inputs of the model's latest training forward (a forward pre-hook) and, once per optimizer step
after the Trainer's backward (``on_pre_optimizer_step``), lets an
:class:`~grouping.affinity.tracker.AffinityTracker` measure through ``task_losses(model, inputs)``, a
mapping from task name to that task's loss on those inputs (typically read from the model's output).
With gradient accumulation that is the step's last micro-batch. The lookahead simulates the step from
a task's own gradient, before the Trainer's gradient clipping. Each epoch closes a trajectory point;
with ``out`` the main process writes the run's JSON at the end of training.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from grouping.affinity.run import AffinityRun
from grouping.affinity.tracker import AffinityTracker, Losses


class AffinityTrainerCallback(TrainerCallback):
    """Measures ``methods`` between ``tasks`` on the parameters ``shared(model)`` returns, every
    ``every`` optimizer steps (see :class:`~grouping.affinity.tracker.AffinityTracker` for
    ``weights``); ``metadata`` (e.g. the model's name) goes into the result."""

    def __init__(
        self,
        tasks: Sequence[str],
        shared: Callable[[torch.nn.Module], Iterable[torch.nn.Parameter]],
        task_losses: Callable[[torch.nn.Module, Mapping[str, Any]], Losses],
        *,
        every: int = 10,
        methods: Sequence[str] = ("tag_first_order",),
        weights: Mapping[str, float] | Sequence[float] | None = None,
        metadata: Mapping[str, Any] | None = None,
        out: str | Path | None = None,
    ) -> None:
        self.tasks, self.shared, self.task_losses = list(tasks), shared, task_losses
        self.every, self.methods, self.weights = every, methods, weights
        self.metadata, self.out = dict(metadata or {}), out
        self.tracker: AffinityTracker | None = None
        self._inputs: dict[str, Any] = {}
        self._hook: torch.utils.hooks.RemovableHandle | None = None
        self._model: torch.nn.Module | None = None

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: torch.nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        **kwargs: Any,
    ) -> None:
        if model is None or optimizer is None:
            raise RuntimeError("the Trainer passed no model or optimizer to the callback")
        optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper holds the real one
        self.tracker = AffinityTracker(
            self.shared(model), optimizer, self.tasks, every=self.every, methods=self.methods,
            weights=self.weights,
        )
        self._model = model

        def keep(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            if module.training and torch.is_grad_enabled():
                self._inputs = dict(kwargs)

        self._hook = model.register_forward_pre_hook(keep, with_kwargs=True)

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        model, inputs = self._model, self._inputs
        self._require().measure(lambda: self.task_losses(model, inputs))

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._require().end_epoch()

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.out is not None and state.is_world_process_zero:
            Path(self.out).write_text(json.dumps(self.result().to_dict()))

    def result(self) -> AffinityRun:
        """The run measured so far."""
        model = {"model": type(self._model).__name__} if self._model is not None else {}
        return self._require().result({**model, "framework": "transformers", **self.metadata})

    def _require(self) -> AffinityTracker:
        if self.tracker is None:
            raise RuntimeError("the callback has not seen the start of training yet")
        return self.tracker
