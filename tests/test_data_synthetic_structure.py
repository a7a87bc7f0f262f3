"""The generated ``synthetic`` dataset's structure options: mixed task types, label noise, linear link."""

from __future__ import annotations

import numpy as np
import pytest

from grouping.data import DatasetSpec, load_dataset
from grouping.data.builtin.synthetic import MIXED_CLASSES, build_synthetic
from grouping.errors import InputError


def test_mixed_task_types_cycle_regression_binary_multiclass() -> None:
    raw = build_synthetic({"n_samples": 400, "n_clusters": 2, "tasks_per_cluster": 3,
                           "conflicting_pairs": 0, "task_types": "mixed"})
    types = {t.name: t.type for t in raw.tasks}
    assert types == {"c0_t0": "regression", "c0_t1": "binary", "c0_t2": "multiclass",
                     "c1_t0": "regression", "c1_t1": "binary", "c1_t2": "multiclass"}
    assert set(np.unique(raw.table["c0_t1"])) == {0, 1}
    counts = np.bincount(raw.table["c1_t2"])
    assert len(counts) == MIXED_CLASSES and counts.min() >= 90  # quartiles: about 100 rows each
    data = load_dataset(DatasetSpec(source="synthetic", options={
        "n_samples": 400, "n_clusters": 2, "tasks_per_cluster": 3, "conflicting_pairs": 0,
        "task_types": "mixed"}))
    assert data.output_dims["c0_t2"] == MIXED_CLASSES


def test_defaults_reproduce_the_original_generator() -> None:
    """New options at their defaults leave the data as it was (same seed, same values)."""
    a = build_synthetic({"n_samples": 300})
    b = build_synthetic({"n_samples": 300, "label_noise": 0.1, "latent_per_cluster": 2,
                         "task_types": "regression", "cluster_gain": 0.0, "link": "tanh"})
    for name in a.table:
        np.testing.assert_array_equal(a.table[name], b.table[name])


def test_label_noise_and_cluster_gain_shape_the_signal() -> None:
    options = {"n_samples": 20_000, "n_clusters": 2, "tasks_per_cluster": 1, "conflicting_pairs": 0,
               "link": "linear", "noise": 0.0}
    quiet = build_synthetic({**options, "label_noise": 0.0, "cluster_gain": 1.0})
    # linear link: unit-variance projection scaled by 1 + gain·c
    assert np.std(quiet.table["c0_t0"]) == pytest.approx(1.0, rel=0.05)
    assert np.std(quiet.table["c1_t0"]) == pytest.approx(2.0, rel=0.05)
    noisy = build_synthetic({**options, "label_noise": 1.0})
    assert np.std(noisy.table["c0_t0"]) == pytest.approx(np.sqrt(2.0), rel=0.05)


def test_bad_options_name_the_field() -> None:
    with pytest.raises(InputError) as caught:
        build_synthetic({"task_types": "text"})
    assert "task_types" in caught.value.field
