"""The three evaluation levels of "It's a Match" (``000_e39fa9ea70ed03c5`` §3.2) for one affinity score.

The ground truth is the MTL gain G(a|b) of target a trained with partner b (eq. 5); a score δ(a, b) is
compared with it per target over the partners P = T \\ {a}:

* **Level 1, predictive power** — Pearson's r between (G(a|b))_b and (δ(a, b))_b for each target a, and
  "all-at-once": r over all n(n−1) ordered pairs together (Table 2).
* **Level 2, partners ranking** (eq. 6) — Kendall's rank correlation of the same two vectors per target,
  and its mean over targets (Table 3). We use **tau-b** (``scipy.stats.kendalltau``'s default): it is
  the variant that accounts for ties in either ranking, and scores such as the taxonomical distance
  have genuine ties. With n − 1 = 4 partners and no ties, tau-a, tau-b and tau-c are all equal to
  (concordant − discordant) / 6, and the paper's Table 3 entries are reproduced. On the paper's tied
  entries (TD for SemSeg and Normal) none of the three variants gives the published value: those match
  tau computed after breaking the score tie by task order (the earlier task ranked higher), i.e. an
  ordinal ranking that invents an order the score does not have — we do not replicate that.
* **Level 3, best partner identification** (eq. 7) — the partner with the highest score and the gain
  lost by choosing it: G(a|chosen) − max_b G(a|b) ≤ 0 (Table 4, sign as printed there). When several
  partners share the highest score the choice is a tie: ``chosen`` lists them all and ``gain_lost`` is
  the mean over them (the expectation under a uniformly random tie-break, as Table 4 does for TD/Normal).

A correlation is undefined (``None``) when either vector is constant or has fewer than two entries;
means skip undefined entries (``None`` if all are).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from grouping.errors import InputError
from grouping.evaluation.pair_matrices import PairMatrix

#: separator of tied partner names in ``BestPartner.label`` (as printed in the paper's Table 4)
TIE_SEPARATOR = "/"


@dataclass(frozen=True)
class BestPartner:
    """Level 3 for one target: the top-scored partner(s) and G(a|chosen) − max_b G(a|b) (mean over ties)."""

    chosen: tuple[str, ...]
    gain_lost: float

    @property
    def label(self) -> str:
        """``"Normal"``, or ``"SemSeg/Depth"`` for a tie."""
        return TIE_SEPARATOR.join(self.chosen)


@dataclass(frozen=True)
class ScoreEvaluation:
    """All three levels of one score; ``to_dict`` is the ``evaluate-scores --json`` entry of the score."""

    pearson: dict[str, float | None]
    pearson_all: float | None
    kendall: dict[str, float | None]
    kendall_mean: float | None
    best_partner: dict[str, BestPartner]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pearson": dict(self.pearson),
            "pearson_all": self.pearson_all,
            "kendall": dict(self.kendall),
            "kendall_mean": self.kendall_mean,
            "best_partner": {
                t: {"chosen": b.label, "gain_lost": b.gain_lost} for t, b in self.best_partner.items()
            },
        }


def pearson_per_target(gain: PairMatrix, score: PairMatrix) -> dict[str, float | None]:
    """Level 1: Pearson's r of G(a|·) and δ(a, ·) over the partners of each target a."""
    return {t: _correlation(stats.pearsonr, *_rows(gain, score, i)) for i, t in enumerate(gain.tasks)}


def pearson_all_at_once(gain: PairMatrix, score: PairMatrix) -> float | None:
    """Level 1, last row of Table 2: Pearson's r over all ordered (target, partner) pairs."""
    _check_same_tasks(gain, score)
    return _correlation(stats.pearsonr, gain.off_diagonal(), score.off_diagonal())


def kendall_per_target(gain: PairMatrix, score: PairMatrix) -> dict[str, float | None]:
    """Level 2 (eq. 6): Kendall's tau-b of G(a|·) and δ(a, ·) over the partners of each target a."""
    return {t: _correlation(stats.kendalltau, *_rows(gain, score, i)) for i, t in enumerate(gain.tasks)}


def best_partners(gain: PairMatrix, score: PairMatrix) -> dict[str, BestPartner]:
    """Level 3 (eq. 7): argmax_b δ(a, b) per target and the MTL gain lost against argmax_b G(a|b)."""
    _check_same_tasks(gain, score)
    result = {}
    for i, target in enumerate(gain.tasks):
        names, g = gain.partners(i)
        _, s = score.partners(i)
        top = np.flatnonzero(s == s.max())
        result[target] = BestPartner(tuple(names[k] for k in top), float(g[top].mean() - g.max()))
    return result


def true_best_partners(gain: PairMatrix) -> dict[str, BestPartner]:
    """The actual best partner(s) of each target ("Expected partner" in Table 4); ``gain_lost`` is 0."""
    return best_partners(gain, gain)


def evaluate_score(gain: PairMatrix, score: PairMatrix) -> ScoreEvaluation:
    """Levels 1-3 of one score against the true gains."""
    kendall = kendall_per_target(gain, score)
    return ScoreEvaluation(
        pearson=pearson_per_target(gain, score),
        pearson_all=pearson_all_at_once(gain, score),
        kendall=kendall,
        kendall_mean=_mean(kendall.values()),
        best_partner=best_partners(gain, score),
    )


def evaluate_scores(gain: PairMatrix, scores: Mapping[str, PairMatrix]) -> dict[str, ScoreEvaluation]:
    """:func:`evaluate_score` for every named score, in the given order."""
    return {name: evaluate_score(gain, score) for name, score in scores.items()}


def _rows(gain: PairMatrix, score: PairMatrix, target: int) -> tuple[np.ndarray, np.ndarray]:
    _check_same_tasks(gain, score)
    return gain.partners(target)[1], score.partners(target)[1]


def _check_same_tasks(gain: PairMatrix, score: PairMatrix) -> None:
    if gain.tasks != score.tasks:
        raise InputError("scores.tasks", f"must be the gains' tasks {list(gain.tasks)} in the same order")


def _correlation(method: Any, x: np.ndarray, y: np.ndarray) -> float | None:
    """``method(x, y).statistic``, or ``None`` where it is undefined (constant input, < 2 points)."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(method(x, y).statistic)


def _mean(values: Any) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None
