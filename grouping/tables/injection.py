"""Label injection (``000_e39fa9ea70ed03c5.txt`` §3.1, eq. 2): the dataset with a partner task's label
added to every split's input, so an STL model for task a can be trained as STL_{a←b}.

The injected label is the encoded target of task b: one column per class (one-hot) for a multiclass
task, the 0/1 or standardised value for a binary or regression task. Tabular inputs get these as
extra feature columns; image inputs get them as extra constant channels (one plane per column), so the
CNN sees the label at every position.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from grouping.data.dataset import Dataset, Split
from grouping.errors import InputError


def inject_label(dataset: Dataset, partner: str) -> Dataset:
    """``dataset`` whose inputs also carry ``partner``'s encoded label (see the module docstring)."""
    if partner not in dataset.task_names:
        raise InputError("inject", f"task {partner!r} is not in the dataset (tasks: {dataset.task_names})")
    kind = dataset.task(partner).type
    classes = dataset.output_dims[partner]

    def extended(split: Split) -> Split:
        y = split.y[partner]
        label = F.one_hot(y, classes).float() if kind == "multiclass" else y.float()[:, None]
        if dataset.input_kind == "image":
            planes = label[:, :, None, None].expand(-1, -1, *split.x.shape[2:])
            return Split(torch.cat([split.x, planes], dim=1), split.y)
        return Split(torch.cat([split.x, label], dim=1), split.y)

    return replace(dataset, train=extended(dataset.train), val=extended(dataset.val),
                   test=extended(dataset.test), feature_names=[*dataset.feature_names, f"label:{partner}"])
