"""Surrogate multi-task networks and the trainer shared by every affinity method.

Exports load on first use (:mod:`grouping._lazy`): the configs need no torch."""

from typing import TYPE_CHECKING

from grouping._lazy import lazy_exports

if TYPE_CHECKING:
    from grouping.training.config import ModelConfig as ModelConfig
    from grouping.training.config import TrainingConfig as TrainingConfig
    from grouping.training.cost import multiply_adds as multiply_adds
    from grouping.training.cost import relative_cost as relative_cost
    from grouping.training.model import MultiTaskNet as MultiTaskNet
    from grouping.training.model import build_model as build_model
    from grouping.training.progress import Cancelled as Cancelled
    from grouping.training.progress import Progress as Progress
    from grouping.training.trainer import TrainResult as TrainResult
    from grouping.training.trainer import train_network as train_network

_EXPORTS = {
    "ModelConfig": "config",
    "TrainingConfig": "config",
    "multiply_adds": "cost",
    "relative_cost": "cost",
    "MultiTaskNet": "model",
    "build_model": "model",
    "Cancelled": "progress",
    "Progress": "progress",
    "TrainResult": "trainer",
    "train_network": "trainer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
