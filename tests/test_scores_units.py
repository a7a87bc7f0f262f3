"""The "It's a Match" scores on small hand-checkable cases (orientation: onto the row from the column)."""

from __future__ import annotations

import numpy as np
import pytest

from grouping.data import DatasetSpec, load_dataset
from grouping.errors import InputError
from grouping.evaluation import parse_gains, parse_scores
from grouping.scores import (
    affinity_problem,
    attribution_similarity,
    gains_document,
    gradient_scores,
    label_injection_gain,
    mtl_gain,
    rdm,
    rsa,
    rsa_matrix,
    scores_document,
    taxonomical_distance,
)
from grouping.tables import NetworkTable, TableRow
from grouping.training import ModelConfig, TrainingConfig


def _row(tasks, test):
    return TableRow(tuple(tasks), "full", dict(test), dict(test), 1.0, 1, 0.0)


def test_mtl_gain_eq5_in_percent_onto_row_from_column():
    table = NetworkTable(["a", "b"], "pairwise", [
        _row("a", {"a": 2.0}), _row("b", {"b": 1.0}), _row("ab", {"a": 1.0, "b": 2.0})])
    gain = mtl_gain(table, "test")
    # G(a|b) = (2 - 1) / 1 = +100 %, G(b|a) = (1 - 2) / 2 = -50 %
    assert gain[0, 1] == pytest.approx(100.0) and gain[1, 0] == pytest.approx(-50.0)
    assert np.isnan(gain[0, 0]) and np.isnan(gain[1, 1])


def test_label_injection_eq2():
    li = label_injection_gain(["a", "b"], {"a": 3.0, "b": 1.0}, {("a", "b"): 1.5, ("b", "a"): 2.0})
    assert li[0, 1] == pytest.approx(100.0)  # (3 - 1.5) / 1.5
    assert li[1, 0] == pytest.approx(-50.0)  # (1 - 2) / 2


def test_rdm_and_rsa():
    rep = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.5], [0.0, 5.0, 1.0]])
    d = rdm(rep)
    assert d[0, 0] == pytest.approx(0.0) and d[0, 1] == pytest.approx(2.0)  # perfectly anti-correlated rows
    assert rsa(rep, 3.0 * rep + 1.0) == pytest.approx(1.0)  # RDMs are invariant to affine maps
    rng = np.random.default_rng(0)
    other = rng.standard_normal((4, 3))
    m = rsa_matrix([rep, other, rep])
    assert m[0, 2] == pytest.approx(1.0) and m[0, 1] == m[1, 0] and np.isnan(m[1, 1])


def test_attribution_similarity_eq8():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert attribution_similarity(a, a) == pytest.approx(1.0)
    assert attribution_similarity(a, -a) == pytest.approx(-1.0)
    # per example: cos([1,0],[0,1]) = 0 and cos([0,2],[0,3]) = 1 -> mean 0.5
    assert attribution_similarity(a, np.array([[0.0, 1.0], [0.0, 3.0]])) == pytest.approx(0.5)
    assert attribution_similarity(a, np.zeros_like(a)) == 0.0


def test_taxonomical_distance():
    tree = {"seg": "semantic", "keypoints": "semantic", "depth": "geometric", "semantic": "root",
            "geometric": "root", "root": None}
    td = taxonomical_distance(["seg", "keypoints", "depth"], tree)
    assert td[0, 1] == -2.0 and td[0, 2] == -4.0 and td[2, 1] == -4.0 and np.isnan(td[0, 0])
    with pytest.raises(InputError, match="not a node"):
        taxonomical_distance(["seg", "normals"], tree)
    with pytest.raises(InputError, match="cycle"):
        taxonomical_distance(["a", "b"], {"a": "b", "b": "a"})
    with pytest.raises(InputError, match="common ancestor"):
        taxonomical_distance(["a", "b"], {"a": "r1", "b": "r2"})


def test_documents_round_trip_through_the_evaluation_and_solver_forms():
    m = np.array([[np.nan, 1.0], [2.0, np.nan]])
    gains = parse_gains(gains_document(["a", "b"], m))
    scores = parse_scores(scores_document(["a", "b"], {"x": m}), gains.tasks)
    assert scores["x"].values[1, 0] == 2.0
    problem = affinity_problem(["a", "b"], m)
    assert problem["affinity"]["onto_row_from_column"] == [[0.0, 1.0], [2.0, 0.0]]


def test_gradient_scores_from_the_affinity_engine():
    options = {"n_samples": 200, "n_clusters": 1, "tasks_per_cluster": 3, "conflicting_pairs": 0}
    data = load_dataset(DatasetSpec(source="synthetic", options=options))
    out = gradient_scores(data, ModelConfig(hidden_units=8, representation=4),
                          TrainingConfig(epochs=1, batch_size=32, every=1))
    gs, gt = out["gradient_similarity"], out["gradient_transference"]
    assert gs.shape == gt.shape == (3, 3)
    assert np.allclose(gs, gs.T, equal_nan=True) and np.all(np.abs(gs[~np.isnan(gs)]) <= 1 + 1e-9)
    assert np.isnan(np.diag(gt)).all() and np.isfinite(gt[~np.eye(3, dtype=bool)]).all()
