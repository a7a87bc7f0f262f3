"""Built-in datasets: generated or bundled with scikit-learn, never downloaded."""

from __future__ import annotations

from grouping.data.builtin.base import BuiltinDataset, RawData
from grouping.data.builtin.digits import build_digits_attributes
from grouping.data.builtin.multidigits import build_multidigits
from grouping.data.builtin.synthetic import build_synthetic

#: name -> built-in dataset
BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "synthetic": BuiltinDataset(
        "synthetic",
        "regression tasks from shared latent factors with planted clusters and conflicting pairs",
        build_synthetic,
        default_epochs=15,
    ),
    "digits-attributes": BuiltinDataset(
        "digits-attributes",
        "scikit-learn 8x8 digits with 8 attribute tasks (class, even, prime, ...)",
        build_digits_attributes,
        default_epochs=20,
    ),
    "multidigits": BuiltinDataset(
        "multidigits",
        "two overlapped 8x8 digits; left and right 10-class tasks (MultiMNIST-style)",
        build_multidigits,
        default_epochs=15,
    ),
}

__all__ = ["BUILTIN_DATASETS", "BuiltinDataset", "RawData"]
