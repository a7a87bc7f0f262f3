"""Datasets: the validated spec, file and built-in sources, splits and tensors for training.

Exports load on first use (:mod:`grouping._lazy`): the spec needs no torch."""

from typing import TYPE_CHECKING

from grouping._lazy import lazy_exports

if TYPE_CHECKING:
    from grouping.data.builtin import BUILTIN_DATASETS as BUILTIN_DATASETS
    from grouping.data.builtin import BuiltinDataset as BuiltinDataset
    from grouping.data.dataset import Dataset as Dataset
    from grouping.data.dataset import Split as Split
    from grouping.data.loader import load_dataset as load_dataset
    from grouping.data.spec import DatasetSpec as DatasetSpec
    from grouping.data.spec import SplitSpec as SplitSpec
    from grouping.data.spec import TaskSpec as TaskSpec

_EXPORTS = {
    "BUILTIN_DATASETS": "builtin",
    "BuiltinDataset": "builtin",
    "Dataset": "dataset",
    "Split": "dataset",
    "load_dataset": "loader",
    "DatasetSpec": "spec",
    "SplitSpec": "spec",
    "TaskSpec": "spec",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
