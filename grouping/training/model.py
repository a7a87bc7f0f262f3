"""Hard-parameter-sharing networks: a shared backbone (MLP or small CNN) and one linear head per task.

The backbone is deterministic and has no batch-statistics layers or dropout; the affinity tracker
(:mod:`grouping.affinity.tracker`) measures on the backbone's parameters and its output.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from grouping.training.config import MAX_PARAMETERS, ModelConfig


class MultiTaskNet(nn.Module):
    """``backbone`` maps inputs to a shared representation; ``heads[name]`` maps it to task outputs.

    Each head is initialised from its own generator seeded by ``(seed, task name)``: a task's head
    starts the same in every network that trains it, whatever the other tasks and their order, so
    comparisons between networks (Standley's tables, MTL gains) are not biased by task position.
    """

    def __init__(
        self, backbone: nn.Module, representation: int, output_dims: Mapping[str, int], seed: int = 0
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(
            {name: _seeded_head(representation, dim, f"{seed}:{name}") for name, dim in output_dims.items()}
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each task's output for the batch ``x``."""
        shared = self.backbone(x)
        return {name: head(shared) for name, head in self.heads.items()}


def _seeded_head(representation: int, dim: int, key: str) -> nn.Linear:
    """A linear head with ``nn.Linear``'s default distribution (uniform ±1/√fan_in for weight and
    bias) drawn from a generator seeded by ``key``."""
    head = nn.Linear(representation, dim)
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    bound = 1.0 / math.sqrt(representation)
    with torch.no_grad():
        for tensor in (head.weight, head.bias):
            tensor.uniform_(-bound, bound, generator=generator)
    return head


def _scaled(units: int, width: float) -> int:
    return max(1, round(units * math.sqrt(width)))


def mlp_backbone(n_inputs: int, config: ModelConfig) -> tuple[nn.Module, int]:
    """ReLU MLP: ``hidden_layers`` layers of ``hidden_units``·√width, then the representation layer."""
    hidden = _scaled(config.hidden_units, config.width)
    rep = _scaled(config.representation, config.width)
    layers: list[nn.Module] = []
    size = n_inputs
    for _ in range(config.hidden_layers):
        layers += [nn.Linear(size, hidden), nn.ReLU()]
        size = hidden
    layers += [nn.Linear(size, rep), nn.ReLU()]
    return nn.Sequential(*layers), rep


def cnn_backbone(input_shape: Sequence[int], config: ModelConfig) -> tuple[nn.Module, int]:
    """Two 3×3 conv blocks (c and 2c channels, c = ``channels``·√width) with 2×2 max-pooling where the
    image is large enough, then a linear representation layer."""
    c_in, height, width = input_shape
    c1 = _scaled(config.channels, config.width)
    c2 = _scaled(2 * config.channels, config.width)
    rep = _scaled(config.representation, config.width)
    layers: list[nn.Module] = []
    size = c_in
    for channels in (c1, c2):
        layers += [nn.Conv2d(size, channels, 3, padding=1), nn.ReLU()]
        if min(height, width) >= 4:
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        size = channels
    layers += [nn.Flatten(), nn.Linear(size * height * width, rep), nn.ReLU()]
    return nn.Sequential(*layers), rep


def build_model(
    input_kind: str,
    input_shape: Sequence[int],
    output_dims: Mapping[str, int],
    config: ModelConfig,
    seed: int = 0,
) -> MultiTaskNet:
    """The network for data of ``input_kind``/``input_shape`` with one head per entry of ``output_dims``;
    the backbone draws from the global torch RNG, each head from ``(seed, task name)``."""
    kind = config.backbone
    if kind == "auto":
        kind = "cnn" if input_kind == "image" else "mlp"
    if kind == "cnn":
        if input_kind != "image":
            from grouping.errors import InputError

            raise InputError("model.backbone", "the cnn backbone needs image data; this dataset is tabular")
        backbone, rep = cnn_backbone(input_shape, config)
    else:
        backbone, rep = mlp_backbone(math.prod(input_shape), config)
        if input_kind == "image":
            backbone = nn.Sequential(nn.Flatten(), backbone)
    return MultiTaskNet(backbone, rep, output_dims, seed)


def parameter_count(
    input_kind: str, input_shape: Sequence[int], output_dims: Mapping[str, int], config: ModelConfig
) -> int:
    """The parameters of the network :func:`build_model` makes, counted on the meta device (nothing
    is allocated, so an oversized request costs nothing to check)."""
    with torch.device("meta"):
        model = build_model(input_kind, input_shape, output_dims, config)
    return sum(p.numel() for p in model.parameters())


def check_parameter_count(
    input_kind: str, input_shape: Sequence[int], output_dims: Mapping[str, int], config: ModelConfig
) -> int:
    """:func:`parameter_count`, or an ``InputError`` naming ``model`` above :data:`MAX_PARAMETERS`."""
    count = parameter_count(input_kind, input_shape, output_dims, config)
    if count > MAX_PARAMETERS:
        from grouping.errors import InputError

        raise InputError("model", f"the network would have {count:,} parameters on this data, more than "
                         f"{MAX_PARAMETERS:,}; use a smaller width, fewer or narrower layers or channels")
    return count
