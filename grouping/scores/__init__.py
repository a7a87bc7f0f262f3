"""The "It's a Match" affinity scores (``000_e39fa9ea70ed03c5.txt`` §3.1, Table 12) as task-pair
matrices in TAG's orientation: ``M[i][j]`` is the score onto task i from task j, NaN diagonal.

MTL gain (eq. 5), label injection (eq. 2/10), RSA (eq. 9), input attribution similarity (eq. 8),
gradient similarity and transference (eq. 11/12, via the affinity engine), taxonomical distance.
"""

from grouping.scores.attribution import attribution_matrix, attribution_similarity
from grouping.scores.document import affinity_problem, gains_document, scores_document
from grouping.scores.gradients import ENGINE_METHODS, gradient_scores
from grouping.scores.label_injection import label_injection, label_injection_gain, label_injection_jobs
from grouping.scores.mtl_gain import mtl_gain
from grouping.scores.rsa import rdm, rsa, rsa_matrix
from grouping.scores.stl_based import stl_scores
from grouping.scores.taxonomy import taxonomical_distance, tree_distance

__all__ = [
    "ENGINE_METHODS",
    "affinity_problem",
    "attribution_matrix",
    "attribution_similarity",
    "gains_document",
    "gradient_scores",
    "label_injection",
    "label_injection_gain",
    "label_injection_jobs",
    "mtl_gain",
    "rdm",
    "rsa",
    "rsa_matrix",
    "scores_document",
    "stl_scores",
    "taxonomical_distance",
    "tree_distance",
]
