"""The training loop every surrogate run shares: mini-batch steps, per-epoch validation with early
stopping (best weights kept), LR schedule, progress, cancellation and checkpoint/resume at epoch ends.

A ``StepObserver`` (the affinity estimators) may take over the gradient computation on the steps it
wants; on the others the loop does the ordinary backward pass of the weighted total loss.

A run may also start from trained weights (``initial_state``, a warm start) and stop after a number of
steps that is not a whole number of epochs (``max_steps``): subset fine-tuning
(:mod:`grouping.tables.warm_start`) fine-tunes copies of a trained all-task network this way.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from grouping.data.dataset import Dataset, Split
from grouping.data.spec import TaskSpec
from grouping.errors import InputError
from grouping.training.checkpoint import CheckpointStore, fingerprint, load_checkpoint, save_checkpoint
from grouping.training.config import ModelConfig, TrainingConfig
from grouping.training.evaluate import split_losses
from grouping.training.losses import task_loss
from grouping.training.model import MultiTaskNet, build_model, check_parameter_count
from grouping.training.optim import make_optimizer, make_scheduler
from grouping.training.progress import Cancelled, Progress


class StepObserver(Protocol):
    """Computes the gradients itself on the steps it wants (e.g. per-task gradients for affinity)."""

    def wants(self, step: int) -> bool:
        """Whether to hand global step ``step`` (0-based) to :meth:`backward`."""

    def backward(
        self,
        model: MultiTaskNet,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor,
        y: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """Fill every parameter's ``.grad`` with the gradient of the weighted total loss on the batch,
        before the optimizer steps; return the per-task losses (tensor, task order)."""

    def end_epoch(self, epoch: int) -> None:
        """Called after each epoch (0-based)."""

    def state_dict(self) -> dict[str, Any]:
        """What to checkpoint (tensors, numbers, lists, dicts)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""


@dataclass
class FitResult:
    """A finished fit: the model holds the best-validation weights. ``best_epoch`` is the 1-based epoch
    whose weights were kept (0: the initial weights of a warm start, when no epoch beat them)."""

    model: MultiTaskNet
    val_loss: dict[str, float]
    epochs_run: int
    best_epoch: int
    steps: int
    seconds: float
    device: str


def resolve_device(choice: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU is an ``InputError``."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise InputError("training.device", "cuda was requested but no CUDA device is available")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_losses(
    model: MultiTaskNet, tasks: Sequence[TaskSpec], x: torch.Tensor, y: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Per-task mean losses on a batch (tensor in task order)."""
    out = model(x)
    return torch.stack([task_loss(task.loss, out[task.name], y[task.name]) for task in tasks])


def fit(
    dataset: Dataset,
    tasks: Sequence[str],
    model_config: ModelConfig,
    training: TrainingConfig,
    *,
    observer: StepObserver | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    checkpoint_dir: Path | None = None,
    run_kind: str = "train",
    initial_state: Mapping[str, torch.Tensor] | None = None,
    max_steps: int | None = None,
    checkpoints: CheckpointStore | None = None,
) -> FitResult:
    """Train one hard-sharing network on ``tasks`` of ``dataset``; see the module docstring.

    The total loss is Σ_t w_t L_t (TAG §4.1 with task weights). A non-finite loss stops the run with an
    ``InputError`` naming the step and task. Resumes from ``checkpoint_dir`` when it holds a checkpoint
    of the same run (``run_kind`` tells plain training and affinity runs apart) — or, given
    ``checkpoints`` (a :class:`~grouping.training.checkpoint.CheckpointStore`), from the checkpoint it
    loads, handing it each epoch's checkpoint. A resumed run ends exactly as the uninterrupted one.

    ``initial_state`` (a warm start) is loaded into the new network before training: the backbone and
    the heads of ``tasks``; entries of other heads are ignored, so the ``state_dict()`` of a network
    trained on more tasks can start a network on a subset of them (a missing entry is an
    ``InputError``). These weights are validated before the first step and count as the best so far,
    so a run that never beats them returns them unchanged. ``max_steps`` ends training after that
    many optimizer steps (at most ``training.epochs`` epochs), so a run can last a fraction of an
    epoch; the epoch it ends in is validated like a complete one.
    """
    specs = _task_specs(dataset, tasks)
    n_train = len(dataset.train)
    if n_train < training.batch_size:
        raise InputError(
            "training.batch_size",
            f"the training split has {n_train} rows, fewer than one batch of {training.batch_size}",
        )
    if max_steps is not None and max_steps < 0:
        raise InputError("max_steps", f"must be at least 0, got {max_steps}")
    heads = {t.name: dataset.output_dims[t.name] for t in specs}
    check_parameter_count(dataset.input_kind, dataset.input_shape, heads, model_config)
    device = resolve_device(training.device)
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the global RNG
        torch.manual_seed(training.seed)
        model = build_model(
            dataset.input_kind,
            dataset.input_shape,
            heads,
            model_config,
            seed=training.seed,
        ).to(device)
    if initial_state is not None:
        _load_initial_state(model, initial_state)
    optimizer = make_optimizer(model.parameters(), training)
    scheduler = make_scheduler(optimizer, training)
    generator = torch.Generator().manual_seed(training.seed)
    weights = torch.tensor([t.weight for t in specs], device=device)
    train, val = dataset.train.to(device), dataset.val.to(device)
    steps_per_epoch = math.ceil(n_train / training.batch_size)
    total_steps = steps_per_epoch * training.epochs
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
    report_every = max(1, total_steps // 100)
    run_parts = {
        "kind": run_kind,
        "dataset": dataset.describe(),
        "tasks": [t.name for t in specs],
        "model": model_config.model_dump(),
        # settings that only change what is measured, not the weights, are left out at their
        # original value so that checkpoints written before they existed still resume
        "training": training.model_dump(
            exclude={"device"} | ({"lookahead_batch"} if training.lookahead_batch == "train" else set())
        ),
    }
    if initial_state is not None or max_steps is not None:  # plain runs keep their old fingerprints
        origin = _digest(model.state_dict()) if initial_state is not None else None
        run_parts["warm_start"] = {"state": origin, "max_steps": max_steps}
    run_id = fingerprint(run_parts)

    state = _State(
        best_val=math.inf,
        best_epoch=-1,
        bad_epochs=0,
        epoch=0,
        step=0,
        elapsed=0.0,
        best_weights=None,
        best_val_losses={},
        stopped=False,
    )
    saved = checkpoints.load(run_id) if checkpoints is not None else load_checkpoint(checkpoint_dir, run_id)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        if observer is not None:
            observer.load_state_dict(saved["observer"])
        state = _State.from_dict(saved["state"])
    elif initial_state is not None:
        model.eval()
        state.keep(model, *_validate(model, val, specs), epoch=-1)
    started = time.perf_counter() - state.elapsed
    running = torch.zeros(len(specs), device=device)
    running_count = 0

    while state.epoch < training.epochs and not state.stopped and state.step < total_steps:
        model.train()
        order = torch.randperm(n_train, generator=generator).to(device)
        for start in range(0, n_train, training.batch_size):
            if state.step >= total_steps:  # max_steps ends the run inside this epoch
                break
            if should_cancel is not None and should_cancel():
                raise Cancelled(f"cancelled at step {state.step}")
            idx = order[start : start + training.batch_size]
            x, y = train.x[idx], {name: t[idx] for name, t in train.y.items()}
            optimizer.zero_grad(set_to_none=True)
            if observer is not None and observer.wants(state.step):
                losses = observer.backward(model, optimizer, x, y)
            else:
                with autocast(device):
                    losses = batch_losses(model, specs, x, y)
                (weights * losses).sum().backward()
            losses = losses.detach().float()
            _check_finite(losses, specs, state.step, state.epoch)
            optimizer.step()
            running += losses
            running_count += 1
            state.step += 1
            if progress is not None and state.step % report_every == 0:
                progress(_report(state, total_steps, specs, running / running_count))
                running.zero_()
                running_count = 0
        scheduler.step()
        model.eval()
        total_val, val_losses = _validate(model, val, specs)
        if total_val < state.best_val:
            state.keep(model, total_val, val_losses, epoch=state.epoch)
        else:
            state.bad_epochs += 1
            state.stopped = training.patience > 0 and state.bad_epochs >= training.patience
        if observer is not None:
            observer.end_epoch(state.epoch)
        state.epoch += 1
        state.elapsed = time.perf_counter() - started
        if checkpoint_dir is not None or checkpoints is not None:
            checkpoint = {
                "fingerprint": run_id,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(),
                "observer": observer.state_dict() if observer is not None else {},
                "state": state.to_dict(),
            }
            if checkpoint_dir is not None:
                save_checkpoint(checkpoint_dir, checkpoint)
            if checkpoints is not None:
                checkpoints.save(state.epoch, checkpoint)

    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    model.eval()
    if progress is not None:
        final = running / running_count if running_count else torch.full((len(specs),), math.nan)
        progress(
            Progress(
                1.0,
                state.epoch,
                state.step,
                total_steps,
                {t.name: float(v) for t, v in zip(specs, final.tolist(), strict=True)},
            )
        )
    return FitResult(
        model,
        state.best_val_losses,
        state.epoch,
        state.best_epoch + 1,
        state.step,
        time.perf_counter() - started,
        str(device),
    )


def _validate(model: MultiTaskNet, val: Split, specs: Sequence[TaskSpec]) -> tuple[float, dict[str, float]]:
    """The weighted total validation loss and the per-task ones."""
    losses = split_losses(model, val, specs)
    return sum(t.weight * losses[t.name] for t in specs), losses


def _load_initial_state(model: MultiTaskNet, initial_state: Mapping[str, torch.Tensor]) -> None:
    """Load the entries of ``initial_state`` that ``model`` has (other tasks' heads are ignored)."""
    own = model.state_dict()
    missing = [key for key in own if key not in initial_state]
    if missing:
        raise InputError("initial_state", f"has no weights for {missing[0]!r} of the network to train")
    model.load_state_dict({key: initial_state[key] for key in own})


def _digest(weights: Mapping[str, torch.Tensor]) -> str:
    """A hash of the weights (the starting point of a warm-started run, for its checkpoint fingerprint)."""
    digest = hashlib.sha256()
    for key, tensor in weights.items():
        digest.update(key.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def _task_specs(dataset: Dataset, tasks: Sequence[str]) -> list[TaskSpec]:
    if not tasks:
        raise InputError("tasks", "choose at least one task")
    if len(set(tasks)) != len(tasks):
        raise InputError("tasks", "a task is listed twice")
    unknown = [name for name in tasks if name not in dataset.task_names]
    if unknown:
        raise InputError("tasks", f"task {unknown[0]!r} is not in the dataset (tasks: {dataset.task_names})")
    return [dataset.task(name) for name in tasks]


def _check_finite(losses: torch.Tensor, specs: Sequence[TaskSpec], step: int, epoch: int) -> None:
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        bad = specs[int((~finite).nonzero()[0, 0])].name
        raise InputError(
            "training",
            f"the loss of task {bad!r} became NaN or infinite at step {step} (epoch {epoch + 1}); "
            "lower the learning rate or check the task's targets",
            step=step,
            task=bad,
        )


def _report(state: _State, total_steps: int, specs: Sequence[TaskSpec], means: torch.Tensor) -> Progress:
    losses = {t.name: float(v) for t, v in zip(specs, means.tolist(), strict=True)}
    return Progress(state.step / total_steps, state.epoch + 1, state.step, total_steps, losses)


@dataclass
class _State:
    best_val: float
    best_epoch: int
    bad_epochs: int
    epoch: int
    step: int
    elapsed: float
    best_weights: dict[str, torch.Tensor] | None
    best_val_losses: dict[str, float]
    stopped: bool

    def keep(self, model: MultiTaskNet, total_val: float, val_losses: dict[str, float], epoch: int) -> None:
        """Make the model's current weights the best so far (``epoch`` -1: the initial weights)."""
        self.best_val, self.best_epoch, self.bad_epochs = total_val, epoch, 0
        self.best_val_losses = val_losses
        self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _State:
        return cls(**data)
