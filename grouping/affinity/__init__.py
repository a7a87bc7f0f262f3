"""Task-affinity estimators measured during one multi-task training run: ``tag`` (TAG eq. 1),
``tag_first_order`` (its first-order approximation) and ``grad_cosine`` (gradient cosine similarity),
by ``AffinityTracker`` in any PyTorch training loop (the built-in surrogate's ``compute_affinity`` too).

Exports load on first use (:mod:`grouping._lazy`): the method names need no torch."""

from typing import TYPE_CHECKING

from grouping._lazy import lazy_exports

if TYPE_CHECKING:
    from grouping.affinity.methods import AFFINITY_METHODS as AFFINITY_METHODS
    from grouping.affinity.run import AffinityRun as AffinityRun
    from grouping.affinity.run import compute_affinity as compute_affinity
    from grouping.affinity.tracker import AffinityTracker as AffinityTracker

_EXPORTS = {
    "AFFINITY_METHODS": "methods",
    "AffinityRun": "run",
    "AffinityTracker": "tracker",
    "compute_affinity": "run",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
