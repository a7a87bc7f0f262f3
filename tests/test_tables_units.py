"""Network-table pieces on small hand-checkable cases: job lists, label injection, HOA form, caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grouping.data import DatasetSpec, TaskSpec, load_dataset
from grouping.errors import InputError
from grouping.tables import NetworkJob, NetworkTable, TableRow, inject_label, table_jobs, train_all
from grouping.tables.jobs import input_x_gradient
from grouping.training import ModelConfig, TrainingConfig

TASKS = ["a", "b", "c", "d"]
OPTIONS = {"n_samples": 200, "n_clusters": 1, "tasks_per_cluster": 2, "conflicting_pairs": 0}
SPEC = DatasetSpec(source="synthetic", options=OPTIONS)


def test_job_lists():
    exhaustive = table_jobs(TASKS, "exhaustive")
    assert len(exhaustive) == 15 + 4
    assert sum(j.size == "half" for j in exhaustive) == 4
    pairwise = table_jobs(TASKS, "pairwise")
    assert len(pairwise) == 4 + 6 + 4 and max(len(j.tasks) for j in pairwise) == 2
    esa = table_jobs(TASKS, "esa", esa_epochs=3)
    assert len(esa) == 19 and {j.epochs for j in esa} == {3}


def _table(method: str, groups: list[tuple[str, ...]]) -> NetworkTable:
    rows = [TableRow(g, "full", {t: 1.0 + len(g) for t in g}, {t: 2.0 for t in g}, 1.0, 3, 0.1)
            for g in groups]
    rows += [TableRow((t,), "half", {t: 5.0}, {t: 6.0}, 0.5, 3, 0.1) for t in TASKS]
    return NetworkTable(TASKS, method, rows)


def test_pairwise_problem_adds_hoa_predictions():
    pairs = [(t,) for t in TASKS] + [(a, b) for i, a in enumerate(TASKS) for b in TASKS[i + 1:]]
    problem = _table("pairwise", pairs).to_problem("val")
    assert len(problem.networks) == 14 + 4 + 1  # + four triples and the quadruple by HOA
    triple = next(n for n in problem.networks if len(n.tasks) == 3)
    assert triple.loss == {t: 3.0 for t in triple.tasks}  # the mean of the pair networks' val losses


def test_problem_costs_and_splits_and_round_trip():
    table = _table("exhaustive", [(t,) for t in TASKS] + [tuple(TASKS)])
    val, test = table.to_problem("val"), table.to_problem("test", cost="measured")
    assert {n.cost for n in val.networks} == {1.0, 0.5}
    assert next(n for n in test.networks if n.size == "half").loss == {"a": 6.0}
    assert NetworkTable.from_dict(table.to_dict()) == table
    with pytest.raises(InputError, match="split"):
        table.to_problem("train")


@pytest.fixture(scope="module")
def tiny():
    return load_dataset(SPEC)


def test_inject_label_appends_the_partner_label(tiny):
    injected = inject_label(tiny, "c0_t1")
    assert injected.train.x.shape[1] == tiny.train.x.shape[1] + 1
    assert torch.equal(injected.test.x[:, -1], tiny.test.y["c0_t1"])
    with pytest.raises(InputError, match="inject"):
        inject_label(tiny, "nope")


def test_inject_label_one_hot_planes_for_images():
    digits = load_dataset(DatasetSpec(source="digits-attributes", tasks=[
        TaskSpec(name="digit", type="multiclass"), TaskSpec(name="even", type="binary")]))
    injected = inject_label(digits, "digit")
    assert injected.train.x.shape[1:] == (1 + 10, 8, 8)
    planes = injected.val.x[:, 1:, 3, 5]
    assert torch.equal(planes.argmax(1), digits.val.y["digit"]) and torch.all(planes.sum(1) == 1)


def test_input_x_gradient_of_a_linear_head_is_x_times_weight():
    from grouping.training import build_model

    model = build_model("tabular", (3,), {"y": 1}, ModelConfig(hidden_units=4, hidden_layers=1))
    model.backbone = torch.nn.Identity()
    model.heads["y"] = torch.nn.Linear(3, 1)
    x = torch.randn(5, 3)
    expected = (x * model.heads["y"].weight.detach()).numpy()
    assert np.allclose(input_x_gradient(model, x, "y"), expected, atol=1e-6)


def test_in_process_training_is_deterministic_and_probes(tiny):
    spec = SPEC
    jobs = [NetworkJob(("c0_t0",), probe_rows=16), NetworkJob(("c0_t0",), 0.5),
            NetworkJob(("c0_t0",), inject="c0_t1")]
    training = TrainingConfig(epochs=2, batch_size=32)
    first = train_all(spec, jobs, ModelConfig(hidden_units=8, representation=4), training, workers=1)
    again = train_all(spec, jobs[:1], ModelConfig(hidden_units=8, representation=4), training, workers=1)
    assert first[0].test_loss == again[0].test_loss
    assert first[0].representations.shape == (16, 4) and first[0].attributions.shape == (16, 24)
    assert first[1].cost < 1.0 and first[0].cost == pytest.approx(1.0)
    with pytest.raises(InputError, match="workers"):
        train_all(spec, jobs, ModelConfig(), training, workers=0)
