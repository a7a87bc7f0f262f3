"""Warm-start subset fine-tuning: one all-task network, then a fine-tuned copy per task subset.

Checks that the table is reproducible (in-process and in the pool, whatever else is fine-tuned), that
the copies start from the trained weights (0 extra epochs gives the all-task network's losses), that
rows and costs are recorded, and that the table's problem form solves."""

from __future__ import annotations

from itertools import combinations

import pytest
import torch

from grouping.data import DatasetSpec, load_dataset
from grouping.errors import InputError
from grouping.selection import solve
from grouping.tables import NetworkTable, candidate_subsets, warm_start_table
from grouping.training import ModelConfig, TrainingConfig
from grouping.training.loop import fit

OPTIONS = {"n_samples": 300, "n_clusters": 2, "tasks_per_cluster": 2, "conflicting_pairs": 0}
SPEC = DatasetSpec(source="synthetic", options=OPTIONS)
TASKS = ["c0_t0", "c0_t1", "c1_t0", "c1_t1"]
MODEL = ModelConfig(hidden_units=16, representation=8)
TRAINING = TrainingConfig(epochs=3, batch_size=32)
STEPS_PER_EPOCH = 7  # 180 training rows in batches of 32


def _comparable(table: NetworkTable) -> list[tuple]:
    """Everything a row holds except its wall time."""
    return [(r.tasks, r.size, r.val_loss, r.test_loss, r.measured_cost, r.epochs_run) for r in table.rows]


def _weighted(losses: dict[str, float]) -> float:
    return sum(losses.values())  # every task of the synthetic suite has weight 1


@pytest.fixture(scope="module")
def table() -> NetworkTable:
    return warm_start_table(SPEC, MODEL, TRAINING, finetune_epochs=1.5, half_singletons=True, workers=1)


def test_rows_cover_every_subset_and_the_half_singletons(table):
    full = [r for r in table.rows if r.size == "full"]
    half = [r for r in table.rows if r.size == "half"]
    assert table.method == "warm_start" and table.tasks == TASKS
    assert [r.tasks for r in full] == [g for size in range(1, 5) for g in combinations(TASKS, size)]
    assert [r.tasks for r in half] == [(t,) for t in TASKS]
    assert all(set(r.val_loss) == set(r.test_loss) == set(r.tasks) for r in table.rows)
    assert all(r.measured_cost == pytest.approx(1.0) for r in full)
    assert all(0.4 < r.measured_cost < 0.7 for r in half)
    steps = 11  # 1.5 epochs of 7 steps, to the nearest step
    assert table.metadata["steps_per_epoch"] == STEPS_PER_EPOCH and table.metadata["finetune_steps"] == steps
    assert table.metadata["row_steps"] == [steps] * len(table.rows)  # patience 5 never stops 2 epochs
    assert all(r.epochs_run == 2 and r.seconds > 0 for r in table.rows)  # 1.5 epochs: the half one counts


def test_cost_of_the_base_runs_is_recorded(table):
    meta = table.metadata
    assert meta["base_epochs"] == 3 and meta["base_steps"] == 3 * STEPS_PER_EPOCH and meta["base_seconds"] > 0
    assert meta["half_base_steps"] == 3 * STEPS_PER_EPOCH and 0.4 < meta["half_base_cost"] < 0.7
    runs = meta["mtl_runs"]
    assert runs["base"] == 1.0
    assert runs["finetune"] == pytest.approx(15 * 11 / 21)  # 15 subsets × 11 steps over 3 epochs of 7
    assert runs["half_base"] == pytest.approx(meta["half_base_cost"])
    assert runs["total"] == pytest.approx(sum(v for k, v in runs.items() if k != "total"))
    assert meta["networks_trained"] == 2 + 15 + 4


def test_fine_tuning_keeps_the_best_of_start_and_epochs(table):
    base = table.metadata["base_val_loss"]
    rows = [r for r in table.rows if r.size == "full"]
    for row in rows:
        assert _weighted(row.val_loss) <= _weighted({t: base[t] for t in row.tasks})
    assert any(row.val_loss != {t: base[t] for t in row.tasks} for row in rows)  # it does fine-tune


@pytest.mark.slow  # starting the pool's processes
def test_same_seed_same_table_in_process_and_in_the_pool(table):
    again = warm_start_table(SPEC, MODEL, TRAINING, finetune_epochs=1.5, half_singletons=True, workers=1)
    pooled = warm_start_table(SPEC, MODEL, TRAINING, finetune_epochs=1.5, half_singletons=True, workers=2)
    assert _comparable(again) == _comparable(table)
    assert _comparable(pooled) == _comparable(table)
    other_seed = warm_start_table(SPEC, MODEL, TRAINING.model_copy(update={"seed": 1}), finetune_epochs=1.5)
    assert _comparable(other_seed) != [r for r in _comparable(table) if r[1] == "full"]


def test_a_row_does_not_depend_on_the_other_subsets(table):
    subsets = [("c1_t1", "c0_t0"), ("c1_t0",), ("c0_t1",), ("c0_t0",), ("c1_t1",)]  # any order
    few = warm_start_table(SPEC, MODEL, TRAINING, finetune_epochs=1.5, subsets=subsets, workers=1)
    assert [r.tasks for r in few.rows] == [("c0_t0",), ("c0_t1",), ("c1_t0",), ("c1_t1",), ("c0_t0", "c1_t1")]
    for row in few.rows:
        assert _comparable(NetworkTable(TASKS, "x", [row])) == _comparable(
            NetworkTable(TASKS, "x", [table.row(row.tasks)]))


def test_zero_extra_epochs_gives_the_base_networks_losses():
    zero = warm_start_table(SPEC, MODEL, TRAINING, finetune_epochs=0.0, half_singletons=True, workers=1)
    meta = zero.metadata
    for row in zero.rows:
        prefix = "base" if row.size == "full" else "half_base"
        assert row.val_loss == {t: meta[f"{prefix}_val_loss"][t] for t in row.tasks}
        assert row.test_loss == {t: meta[f"{prefix}_test_loss"][t] for t in row.tasks}
        assert row.epochs_run == 0
    everything = zero.row(TASKS)
    assert everything.val_loss == meta["base_val_loss"] and everything.test_loss == meta["base_test_loss"]
    assert meta["row_steps"] == [0] * len(zero.rows) and meta["mtl_runs"]["finetune"] == 0.0


def test_a_warm_start_begins_at_the_trained_weights():
    data = load_dataset(SPEC)
    base = fit(data, TASKS, MODEL, TRAINING)
    weights = base.model.state_dict()
    pair = ["c0_t1", "c1_t0"]
    other_seed = TRAINING.model_copy(update={"seed": 9})  # a different initialisation, overwritten
    start = fit(data, pair, MODEL, other_seed, initial_state=weights, max_steps=0)
    assert start.val_loss == {t: base.val_loss[t] for t in pair}
    assert start.best_epoch == 0 and start.steps == 0 and start.epochs_run == 0
    assert torch.equal(start.model.backbone[0].weight, base.model.backbone[0].weight)
    assert torch.equal(start.model.heads["c1_t0"].weight, base.model.heads["c1_t0"].weight)
    tuned = fit(data, pair, MODEL, TRAINING, initial_state=weights, max_steps=3)
    assert tuned.steps == 3 and tuned.epochs_run == 1
    assert _weighted(tuned.val_loss) <= _weighted(start.val_loss)
    with pytest.raises(InputError, match="initial_state"):
        fit(data, pair, MODEL, TRAINING, initial_state={"backbone.0.weight": weights["backbone.0.weight"]})
    with pytest.raises(InputError, match="max_steps"):
        fit(data, pair, MODEL, TRAINING, max_steps=-1)


@pytest.mark.parametrize("budget", [1, 1.5, 2, 3, 4])
def test_the_problem_form_solves_like_brute_force(table, budget):
    problem = table.to_problem("val")
    assert {n.size for n in problem.networks} == {"full", "half"} and len(problem.networks) == 19
    best = solve(problem, budget)
    assert best.status == "optimal"
    assert best.objective == pytest.approx(solve(problem, budget, solver="brute_force").objective, rel=1e-9)
    assert NetworkTable.from_dict(table.to_dict()) == table


def test_candidate_subsets():
    many = [f"t{k}" for k in range(8)]
    default = candidate_subsets(many)
    assert len(default) == 8 + 28 and max(len(s) for s in default) == 2
    top = candidate_subsets(many, extra_subsets=[("t5", "t1", "t3"), ("t0", "t1")])
    assert len(top) == 8 + 28 + 1 and top[-1] == ("t1", "t3", "t5")
    assert len(candidate_subsets(TASKS)) == 15
    with pytest.raises(InputError, match="not in the dataset"):
        candidate_subsets(TASKS, extra_subsets=[("nope",)])
    with pytest.raises(InputError, match="empty"):
        candidate_subsets(TASKS, extra_subsets=[()])
    with pytest.raises(InputError, match="twice"):
        candidate_subsets(TASKS, extra_subsets=[("c0_t0", "c0_t0")])
    with pytest.raises(InputError, match="c1_t1"):
        candidate_subsets(TASKS, subsets=[("c0_t0", "c0_t1", "c1_t0")])
    with pytest.raises(InputError, match="finetune_epochs"):
        warm_start_table(SPEC, MODEL, TRAINING, finetune_epochs=-1.0)
