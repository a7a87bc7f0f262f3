"""Evaluation (issue 4): affinity scores against true MTL gains ("It's a Match" §3.2) and grouping regret.

- :mod:`~grouping.evaluation.pair_matrices` — the gains/scores JSON documents (``onto_row_from_column``);
- :mod:`~grouping.evaluation.score_levels` — levels 1-3: Pearson, Kendall tau-b, best partner;
- :mod:`~grouping.evaluation.groupings` — every task grouping of an explicit table (Random/Pessimal);
- :mod:`~grouping.evaluation.regret` — a selection's true loss, optimal/random/pessimal, normalised regret.
"""

from grouping.evaluation.groupings import Grouping, all_groupings, feasible
from grouping.evaluation.pair_matrices import PairMatrix, parse_gains, parse_scores
from grouping.evaluation.regret import GroupingQuality, grouping_quality, quality_curve, selection_total
from grouping.evaluation.score_levels import (
    BestPartner,
    ScoreEvaluation,
    best_partners,
    evaluate_score,
    evaluate_scores,
    kendall_per_target,
    pearson_all_at_once,
    pearson_per_target,
    true_best_partners,
)

__all__ = [
    "BestPartner",
    "Grouping",
    "GroupingQuality",
    "PairMatrix",
    "ScoreEvaluation",
    "all_groupings",
    "best_partners",
    "evaluate_score",
    "evaluate_scores",
    "feasible",
    "grouping_quality",
    "kendall_per_target",
    "parse_gains",
    "parse_scores",
    "pearson_all_at_once",
    "pearson_per_target",
    "quality_curve",
    "selection_total",
    "true_best_partners",
]
