"""Model and training settings (pydantic; every field defaulted and validated)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: the most parameters a surrogate network may have. The surrogate is a small model trained many
#: times over; a request beyond this is a mistake that would exhaust a worker's memory (4.3 billion
#: parameters fit the per-field bounds: width 4 × 16 layers of 8,192 units)
MAX_PARAMETERS = 50_000_000


class ModelConfig(BaseModel):
    """Hard parameter sharing: one backbone, one linear head per task.

    ``backbone`` ``auto`` picks ``mlp`` for tabular and ``cnn`` for image data. ``width`` is the size of
    the network as a fraction of the full-size one's multiply-adds: channel counts scale by √width, so a
    ``width=0.5`` network costs about half (the exact, measured ratio is ``TrainResult.cost``).
    ``hidden_units``/``hidden_layers`` shape the full-size MLP, ``channels`` the full-size CNN's first
    block (the second has twice as many), ``representation`` the size of the shared output that feeds
    the heads.
    """

    model_config = ConfigDict(extra="forbid")

    backbone: Literal["auto", "mlp", "cnn"] = "auto"
    width: float = Field(default=1.0, gt=0.0, le=4.0)
    hidden_units: int = Field(default=128, ge=1, le=8192)
    hidden_layers: int = Field(default=2, ge=1, le=16)
    channels: int = Field(default=16, ge=1, le=1024)
    representation: int = Field(default=64, ge=1, le=8192)

    @model_validator(mode="after")
    def _bounded_size(self) -> ModelConfig:
        # the hidden-to-hidden layers alone, which do not depend on the data: (layers − 1)·h², with
        # h = hidden_units·√width as the MLP backbone scales it; the whole network is checked once the
        # data's shape is known (grouping.training.model.check_parameter_count)
        hidden = max(1, round(self.hidden_units * self.width**0.5))
        if self.backbone != "cnn" and (self.hidden_layers - 1) * hidden * hidden > MAX_PARAMETERS:
            raise ValueError(
                f"{self.hidden_layers} hidden layers of {hidden} units (hidden_units × √width) exceed "
                f"{MAX_PARAMETERS:,} parameters; use fewer or narrower layers")
        return self


class TrainingConfig(BaseModel):
    """How to train: optimizer, learning rate and schedule, length, early stopping, seed, device.

    The default is plain SGD: its lookahead step (TAG eq. 1) is the task's own gradient, whereas with
    ``momentum`` or ``adam`` the simulated step is mostly the optimizer's shared momentum, which adds a
    common offset to each row of the affinity matrix and shrinks the task-specific signal (to about
    1 − β₁ of the step for Adam). ``momentum`` applies to ``momentum`` (SGD with momentum) only;
    ``weight_decay`` is L2 added to the gradient (as ``torch.optim.SGD``/``Adam`` do).
    ``every``: affinity is measured every n-th step. ``patience``: stop after this many epochs without
    a better validation loss (0 disables early stopping). ``lr_schedule``: ``constant``, ``cosine``
    (to 0 over all epochs) or ``step`` (×0.1 at 50% and 75% of the epochs).
    ``device``: ``auto`` takes CUDA when present (with bf16 autocast) else CPU.
    ``lookahead_batch`` (affinity runs only; plain training ignores it): the batch on which the
    lookahead losses of ``tag`` and ``tag_first_order`` are evaluated. ``train``: the training batch
    whose task gradients make the step (TAG eq. 1 as written). ``val``: a batch of the same size drawn
    from the validation split, seeded by ``seed``; the step is still the one from the training batch
    and training itself is unchanged (``grouping.affinity.heldout``).
    """

    model_config = ConfigDict(extra="forbid")

    optimizer: Literal["sgd", "momentum", "adam"] = "sgd"
    lr: float = Field(default=0.03, gt=0.0, le=10.0)
    momentum: float | None = Field(default=None, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    epochs: int = Field(default=20, ge=1, le=10_000)
    batch_size: int = Field(default=64, ge=1, le=65_536)
    every: int = Field(default=10, ge=1, le=100_000)
    seed: int = 0
    patience: int = Field(default=5, ge=0, le=10_000)
    lr_schedule: Literal["constant", "cosine", "step"] = "constant"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    lookahead_batch: Literal["train", "val"] = "train"

    @model_validator(mode="after")
    def _momentum_only_for_momentum(self) -> TrainingConfig:
        # Checks the value, not whether it was set, so that a dumped config validates again.
        if self.optimizer != "momentum" and self.momentum:
            raise ValueError(f"momentum is set but optimizer is {self.optimizer!r}; use optimizer 'momentum'")
        return self

    @property
    def momentum_coefficient(self) -> float:
        """The momentum the optimizer uses: the given one, 0.9 by default, 0 unless ``momentum``."""
        if self.optimizer != "momentum":
            return 0.0
        return 0.9 if self.momentum is None else self.momentum
