"""Network-table methods (issue 4): train candidate networks and write the explicit problem form.

``exhaustive`` (Standley §3.1, the ground truth), ``pairwise`` (+ Higher-Order Approximation, §3.3.2)
and ``esa`` (Early Stopping Approximation, §3.3.1); the networks train in a process pool.
``warm_start_table``: the all-task network trained once, then fine-tuned on each candidate subset.
"""

from grouping.tables.build import MAX_TASKS, TABLE_METHODS, build_table, table_jobs
from grouping.tables.injection import inject_label
from grouping.tables.jobs import NetworkJob, TrainedNetwork, train_job
from grouping.tables.pool import default_workers, train_all
from grouping.tables.table import NetworkTable, TableRow
from grouping.tables.warm_start import (
    WARM_START_METHOD,
    candidate_subsets,
    finetune_seed,
    network_count,
    warm_start_table,
)

__all__ = [
    "MAX_TASKS",
    "TABLE_METHODS",
    "WARM_START_METHOD",
    "NetworkJob",
    "NetworkTable",
    "TableRow",
    "TrainedNetwork",
    "build_table",
    "candidate_subsets",
    "default_workers",
    "finetune_seed",
    "inject_label",
    "network_count",
    "table_jobs",
    "train_all",
    "train_job",
    "warm_start_table",
]
