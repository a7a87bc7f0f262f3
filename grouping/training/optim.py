"""Optimizer and learning-rate schedule from a ``TrainingConfig``."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from grouping.training.config import TrainingConfig


def make_optimizer(params: Iterable[torch.nn.Parameter], config: TrainingConfig) -> torch.optim.Optimizer:
    """``sgd`` (plain), ``momentum`` (SGD with heavy-ball momentum, no dampening) or ``adam``; weight
    decay is L2 added to the gradient in all three (the affinity lookahead simulates each exactly)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    momentum = config.momentum_coefficient
    return torch.optim.SGD(params, lr=config.lr, momentum=momentum, weight_decay=config.weight_decay)


def lr_factor(config: TrainingConfig, epoch: int) -> float:
    """Multiplier of the base learning rate during ``epoch`` (0-based)."""
    if config.lr_schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))
    if config.lr_schedule == "step":
        return 0.1 ** sum(epoch >= round(config.epochs * f) for f in (0.5, 0.75))
    return 1.0


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainingConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch schedule (``scheduler.step()`` once at the end of each epoch)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_factor(config, epoch))
