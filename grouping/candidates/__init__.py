"""Candidate networks for selection: explicit tables, pairwise-affinity groups, HOA, Standley's TSV tables."""

from grouping.candidates.affinity_groups import all_groups_table, group_scores
from grouping.candidates.evaluate import evaluate_selection
from grouping.candidates.hoa import higher_order_approximation
from grouping.candidates.standley import STANDLEY_TASKS, read_standley_table
from grouping.candidates.table import CandidateTable, explicit_table

__all__ = [
    "STANDLEY_TASKS",
    "CandidateTable",
    "all_groups_table",
    "evaluate_selection",
    "explicit_table",
    "group_scores",
    "higher_order_approximation",
    "read_standley_table",
]
