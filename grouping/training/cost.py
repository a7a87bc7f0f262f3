"""Inference cost of a network in multiply-adds, and in units of the full-size network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from grouping.training.config import ModelConfig
from grouping.training.model import build_model


def multiply_adds(model: torch.nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass on one example (``torch.utils.flop_counter`` FLOPs / 2)."""
    param = next(model.parameters())
    example = torch.zeros((1, *input_shape), dtype=param.dtype, device=param.device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(example)
    return counter.get_total_flops() // 2


def relative_cost(
    input_kind: str, input_shape: Sequence[int], output_dims: Mapping[str, int], config: ModelConfig
) -> float:
    """Multiply-adds of the network ``config`` describes over those of the same network at ``width=1``
    (the full-size network, with the same heads): the cost unit of the selection problem."""
    full = config.model_copy(update={"width": 1.0})
    mine = multiply_adds(build_model(input_kind, input_shape, output_dims, config), input_shape)
    reference = multiply_adds(build_model(input_kind, input_shape, output_dims, full), input_shape)
    return mine / reference
