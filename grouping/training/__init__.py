"""Surrogate multi-task networks and the trainer shared by every affinity method."""

from grouping.training.config import ModelConfig, TrainingConfig
from grouping.training.cost import multiply_adds, relative_cost
from grouping.training.model import MultiTaskNet, build_model
from grouping.training.progress import Cancelled, Progress
from grouping.training.trainer import TrainResult, train_network

__all__ = [
    "Cancelled",
    "ModelConfig",
    "MultiTaskNet",
    "Progress",
    "TrainResult",
    "TrainingConfig",
    "build_model",
    "multiply_adds",
    "relative_cost",
    "train_network",
]
