"""Per-task losses on head outputs with any leading batch dimensions (the lookahead vmaps over tasks).

``task_loss(loss, out, y)`` returns the mean over the last batch dimension: ``out`` is ``(..., B, k)``
and ``y`` is ``(B,)``; the result has shape ``(...)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def task_loss(loss: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean loss over examples: ``bce`` (logit vs 0/1), ``cross_entropy`` (logits vs class index),
    ``mse`` or ``l1`` (prediction vs standardised target)."""
    if out.dtype in (torch.float16, torch.bfloat16):  # autocast outputs: compute the loss in fp32
        out = out.float()
    if loss == "cross_entropy":
        flat = F.cross_entropy(
            out.reshape(-1, out.shape[-1]), y.expand(out.shape[:-1]).reshape(-1), reduction="none"
        )
        return flat.reshape(out.shape[:-1]).mean(-1)
    pred = out.squeeze(-1)
    target = y.expand(pred.shape)
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(pred, target, reduction="none").mean(-1)
    if loss == "mse":
        return (pred - target).square().mean(-1)
    if loss == "l1":
        return (pred - target).abs().mean(-1)
    raise ValueError(f"unknown loss {loss!r}")
