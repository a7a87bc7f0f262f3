"""Datasets: the validated spec, file and built-in sources, splits and tensors for training."""

from grouping.data.builtin import BUILTIN_DATASETS, BuiltinDataset
from grouping.data.dataset import Dataset, Split
from grouping.data.loader import load_dataset
from grouping.data.spec import DatasetSpec, SplitSpec, TaskSpec

__all__ = [
    "BUILTIN_DATASETS",
    "BuiltinDataset",
    "Dataset",
    "DatasetSpec",
    "Split",
    "SplitSpec",
    "TaskSpec",
    "load_dataset",
]
