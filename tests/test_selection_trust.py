"""How far to trust a selection: its predicted values re-evaluated under samples of the estimate."""

from __future__ import annotations

import numpy as np
import pytest

from grouping.data import DatasetSpec
from grouping.errors import InputError
from grouping.problem import parse_problem
from grouping.selection import solve
from grouping.selection.trust import resampled_affinity, selection_trust
from grouping.tables import warm_start_table
from grouping.training import ModelConfig, TrainingConfig
from grouping.training.evaluate import bootstrap_means


def table(pair: float, all_task: float) -> dict:
    return {"tasks": ["a", "b", "c"], "objective": "min_loss", "networks": [
        {"tasks": ["a"], "loss": {"a": 1.0}}, {"tasks": ["b"], "loss": {"b": 1.0}},
        {"tasks": ["c"], "loss": {"c": 1.0}},
        {"tasks": ["a", "b"], "loss": {"a": pair, "b": pair}},
        {"tasks": ["a", "b", "c"], "loss": {"a": all_task, "b": all_task, "c": all_task}}]}


def test_explicit_trust_by_hand() -> None:
    estimate = parse_problem(table(0.8, 1.1))
    solution = solve(estimate, 2.0)  # {a,b} at 0.8 each + {c} at 1.0 = 2.6 vs all-task 3.3
    assert solution.objective == pytest.approx(2.6)
    samples = [parse_problem(table(p, q)) for p, q in ((0.7, 1.0), (0.9, 1.2), (1.3, 1.0))]
    trust = selection_trust(solution, estimate, samples, level=0.5)
    assert trust.samples == 3
    assert trust.objective.value == pytest.approx(2.6)
    assert trust.all_task.value == pytest.approx(3.3)
    assert trust.gain.value == pytest.approx(0.7)
    # gains per sample: 3.0-2.4, 3.6-2.8, 3.0-3.6 -> 0.6, 0.8, -0.6: two of three positive
    assert trust.win_rate == pytest.approx(2 / 3)
    assert trust.gain.low == pytest.approx(np.percentile([0.6, 0.8, -0.6], 25))
    values = sorted(n.value for n in trust.networks)
    assert values == pytest.approx([1.0, 1.6])


def test_affinity_trust_collapses_when_every_epoch_agrees() -> None:
    m = [[1.0, 0.3, -0.2], [0.2, 1.0, -0.1], [-0.3, 0.1, 1.0]]
    estimate = parse_problem({"tasks": ["a", "b", "c"], "objective": "max_affinity",
                              "affinity": {"onto_row_from_column": m}, "half_singletons": True})
    solution = solve(estimate, 1.5)
    samples = resampled_affinity(estimate, [m, m, m], draws=10)
    trust = selection_trust(solution, estimate, samples)
    assert trust.objective.low == pytest.approx(trust.objective.value)
    assert trust.objective.high == pytest.approx(trust.objective.value)
    assert trust.gain.value > 0  # {a,b} + half {c} beats one network of all three


def test_affinity_resampling_spreads_with_the_epochs() -> None:
    rng = np.random.default_rng(0)
    epochs = [rng.normal(0.1, 0.2, (3, 3)).tolist() for _ in range(8)]
    estimate = parse_problem({"tasks": ["a", "b", "c"], "objective": "max_affinity",
                              "affinity": {"onto_row_from_column": np.mean(epochs, axis=0).tolist()}})
    trust = selection_trust(solve(estimate, 2.0), estimate, resampled_affinity(estimate, epochs, draws=200))
    assert trust.objective.low < trust.objective.value < trust.objective.high


def test_bad_input_names_the_field() -> None:
    estimate = parse_problem(table(0.8, 1.1))
    with pytest.raises(InputError) as caught:
        selection_trust(solve(estimate, 2.0), estimate, [])
    assert caught.value.field == "samples"
    with pytest.raises(InputError) as caught:
        resampled_affinity(parse_problem({"tasks": ["a", "b"], "objective": "max_affinity",
                                          "affinity": {"onto_row_from_column": [[1, 0], [0, 1]]}}),
                           [[[None, 0.0], [0.0, 1.0]]])
    assert caught.value.field == "trajectory"


def test_bootstrap_draws_are_paired_across_networks() -> None:
    one = bootstrap_means({"t": np.arange(50.0)}, 5)
    two = bootstrap_means({"t": np.arange(50.0) * 2}, 5)
    assert np.allclose(np.array(two["t"]), 2 * np.array(one["t"]))


def test_warm_start_table_stores_validation_draws() -> None:
    spec = DatasetSpec(source="synthetic", options={"n_samples": 300, "n_clusters": 1,
                                                     "tasks_per_cluster": 2, "conflicting_pairs": 0})
    result = warm_start_table(spec, ModelConfig(hidden_units=16, representation=8),
                              TrainingConfig(epochs=2, device="cpu"), finetune_epochs=0.5,
                              half_singletons=True, val_draws=40)
    samples = result.val_samples()
    assert len(samples) == 40
    for row in result.rows:
        for task, draws in row.val_draws.items():
            assert np.mean(draws) == pytest.approx(row.val_loss[task], rel=0.1)
    estimate = result.to_problem("val")
    trust = selection_trust(solve(estimate, 1.5), estimate, samples)
    assert trust.samples == 40 and trust.all_task is not None


def test_an_affinity_document_with_its_trajectory_carries_samples() -> None:
    from grouping.selection.trust import problem_samples

    epochs = [[[1.0, 0.2, -0.1], [0.3, 1.0, 0.0], [-0.2, 0.1, 1.0]],
              [[1.0, 0.4, -0.3], [0.1, 1.0, 0.2], [0.0, 0.1, 1.0]],
              [[1.0, None, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]  # an epoch without a measurement
    document = {"tasks": ["a", "b", "c"], "objective": "max_affinity", "half_singletons": True,
                "affinity": {"onto_row_from_column": np.mean(epochs[:2], axis=0).tolist()},
                "metadata": {"method": "tag_first_order", "trajectories": {"tag_first_order": epochs}}}
    samples = problem_samples(document)
    assert len(samples) == 200 and all(s.half_singletons for s in samples)
    estimate = parse_problem({k: v for k, v in document.items() if k != "metadata"})
    trust = selection_trust(solve(estimate, 1.5), estimate, samples)
    assert trust.objective.low <= trust.objective.value <= trust.objective.high
    one_epoch = {**document, "metadata": {"method": "tag_first_order",
                                          "trajectories": {"tag_first_order": epochs[:1]}}}
    assert problem_samples(one_epoch) == []
    assert problem_samples({**document, "metadata": {}}) == []
