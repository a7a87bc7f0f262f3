"""Task-affinity estimators measured during one multi-task training run: ``tag`` (TAG eq. 1),
``tag_first_order`` (its first-order approximation) and ``grad_cosine`` (gradient cosine similarity)."""

from grouping.affinity.run import AFFINITY_METHODS, AffinityRun, compute_affinity

__all__ = ["AFFINITY_METHODS", "AffinityRun", "compute_affinity"]
