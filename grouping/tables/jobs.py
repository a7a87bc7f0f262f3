"""One network to train for a table or a score, and how a worker trains it.

A :class:`NetworkJob` names the tasks a network trains on, its width (1 = full size, 0.5 = Standley's
half-size single-task network), an optional epoch count overriding the training config (ESA) and an
optional partner task whose label is injected into the input (label injection, ``000_…`` eq. 2).
With ``probe_rows > 0`` the worker also returns the backbone representations and the InputXGradient
attributions of the first ``probe_rows`` test examples (RSA and IAS need the trained STL backbones).

A warm-started job (subset fine-tuning, :mod:`grouping.tables.warm_start`) names in ``start`` the
trained weights it starts from (handed to :func:`train_job` as ``starts``), may stop after ``steps``
optimizer steps (a fraction of an epoch) and draws its data order from its own ``seed``; a job with
``keep_state`` returns its trained weights (the network others are fine-tuned from).

With ``val_draws > 0`` the worker also returns that many bootstrap means of each task's validation
loss over resampled validation examples (:func:`grouping.training.evaluate.bootstrap_means`; the same
draws for every network of the dataset), from which :mod:`grouping.selection.trust` reports how much a
selection's predicted values move with the validation examples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from grouping.data.dataset import Dataset
from grouping.errors import InputError
from grouping.tables.injection import inject_label
from grouping.training.checkpoint import CheckpointStore
from grouping.training.config import ModelConfig, TrainingConfig
from grouping.training.cost import relative_cost
from grouping.training.evaluate import bootstrap_means, example_losses, split_losses
from grouping.training.loop import fit
from grouping.training.model import MultiTaskNet
from grouping.training.progress import Progress

#: a network's weights (``state_dict()``), on the CPU
StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class NetworkJob:
    """What to train; ``tasks`` in dataset order, ``inject`` a partner task whose label joins the input;
    ``start``, ``steps``, ``seed`` and ``keep_state`` for warm starts (see the module docstring)."""

    tasks: tuple[str, ...]
    width: float = 1.0
    epochs: int | None = None
    inject: str | None = None
    probe_rows: int = 0
    start: str | None = None
    steps: int | None = None
    seed: int | None = None
    keep_state: bool = False
    val_draws: int = 0

    @property
    def size(self) -> str:
        """``full`` for width 1, ``half`` for anything smaller (the explicit problem's size mark)."""
        return "full" if self.width >= 1.0 else "half"


@dataclass
class TrainedNetwork:
    """A trained network's per-task validation and test losses, measured inference cost (full-size
    units), epochs run (a partly run epoch counts as one), wall time and optimizer steps;
    ``representations``/``attributions`` when probes were asked for, ``state`` (the trained weights, on
    the CPU) when the job keeps it."""

    job: NetworkJob
    val_loss: dict[str, float]
    test_loss: dict[str, float]
    cost: float
    epochs_run: int
    seconds: float
    representations: np.ndarray | None = None
    attributions: np.ndarray | None = field(default=None, repr=False)
    steps: int = 0
    state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    val_draws: dict[str, list[float]] | None = field(default=None, repr=False)


def train_job(dataset: Dataset, job: NetworkJob, model: ModelConfig, training: TrainingConfig,
              starts: Mapping[str, StateDict] | None = None, *,
              progress: Callable[[Progress], None] | None = None,
              should_cancel: Callable[[], bool] | None = None,
              checkpoints: CheckpointStore | None = None) -> TrainedNetwork:
    """Train ``job`` on ``dataset`` (early stopping on validation loss, best weights kept) and measure it.

    A job with ``start`` begins from ``starts[job.start]`` (the backbone and its tasks' heads; see
    :func:`grouping.training.loop.fit`'s ``initial_state``). ``progress``, ``should_cancel`` and
    ``checkpoints`` are handed to :func:`~grouping.training.loop.fit` (its progress reports;
    ``Cancelled`` before a step once ``should_cancel()`` is true; epoch-end checkpoints to resume from)."""
    data = inject_label(dataset, job.inject) if job.inject is not None else dataset
    config = model.model_copy(update={"width": job.width})
    if job.epochs is not None:
        training = training.model_copy(update={"epochs": job.epochs})
    if job.seed is not None:
        training = training.model_copy(update={"seed": job.seed})
    initial_state = None
    if job.start is not None:
        if starts is None or job.start not in starts:
            raise InputError("starts", f"no trained weights named {job.start!r} to start {job.tasks} from")
        initial_state = starts[job.start]
    result = fit(data, list(job.tasks), config, training, initial_state=initial_state, max_steps=job.steps,
                 progress=progress, should_cancel=should_cancel, checkpoints=checkpoints)
    specs = [data.task(name) for name in job.tasks]
    device = next(result.model.parameters()).device
    test_loss = split_losses(result.model, data.test.to(device), specs)
    heads = {t: data.output_dims[t] for t in job.tasks}
    cost = relative_cost(data.input_kind, data.input_shape, heads, config)
    trained = TrainedNetwork(job, result.val_loss, test_loss, cost, result.epochs_run, result.seconds,
                             steps=result.steps)
    if job.val_draws > 0:
        losses = example_losses(result.model, data.val.to(device), specs)
        trained.val_draws = bootstrap_means(losses, job.val_draws)
    if job.keep_state:
        trained.state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    if job.probe_rows > 0:
        x = data.test.x[: job.probe_rows].to(device)
        trained.representations = backbone_output(result.model, x)
        trained.attributions = input_x_gradient(result.model, x, job.tasks[0])
    return trained


@torch.no_grad()
def backbone_output(model: MultiTaskNet, x: torch.Tensor) -> np.ndarray:
    """The shared representation θ_B(x) of each example (rows × features), as RSA compares them."""
    return model.backbone(x).float().cpu().numpy()


def input_x_gradient(model: MultiTaskNet, x: torch.Tensor, task: str) -> np.ndarray:
    """InputXGradient attributions (Shrikumar et al. 2016): x ⊙ ∂f(x)/∂x per example, flattened.

    ``f`` is the task's output for the explained unit: the single output of a binary or regression head,
    the predicted class's logit of a multiclass head (the usual choice when no target class is given).
    """
    x = x.detach().clone().requires_grad_(True)
    out = model(x)[task].float()
    if out.shape[1] > 1:
        unit = out.argmax(dim=1, keepdim=True)
    else:
        unit = torch.zeros_like(out[:, :1], dtype=torch.long)
    (grad,) = torch.autograd.grad(out.gather(1, unit).sum(), x)
    return (x * grad).detach().reshape(len(x), -1).cpu().numpy()
