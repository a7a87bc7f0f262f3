"""compute_affinity on real data: planted structure, storage round trip, resume, CLI."""

import json

import numpy as np
import pytest
import torch

from grouping.affinity import AFFINITY_METHODS, AffinityRun, compute_affinity
from grouping.data import DatasetSpec, load_dataset
from grouping.errors import InputError
from grouping.problem import parse_problem
from grouping.training import Cancelled, ModelConfig, TrainingConfig
from service.cli import main

SMALL = ModelConfig(hidden_units=64, representation=32)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cluster_means(matrix, tasks, clusters):
    at = {name: k for k, name in enumerate(tasks)}
    within = [matrix[at[a], at[b]] for c in clusters for a in c for b in c if a != b]
    across = [matrix[at[a], at[b]] for c in clusters for d in clusters if c is not d for a in c for b in d]
    return float(np.mean(within)), float(np.mean(across))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tag_recovers_planted_clusters_and_conflicts(seed):
    data = load_dataset(DatasetSpec(source="synthetic", options={"seed": seed, "n_samples": 2000}))
    run = compute_affinity(data, ["tag"], SMALL, TrainingConfig(epochs=12, seed=seed))
    tag = run.matrices["tag"]
    within, across = _cluster_means(tag, run.tasks, data.info["clusters"])
    assert within > across
    for a, b in data.info["conflicting_pairs"]:
        i, j = run.tasks.index(a), run.tasks.index(b)
        assert tag[i, j] < 0 and tag[j, i] < 0


def test_run_shapes_metadata_and_round_trip(tmp_path):
    data = load_dataset(DatasetSpec(source="synthetic", options={"n_samples": 400, "n_clusters": 2}))
    run = compute_affinity(data, list(AFFINITY_METHODS), SMALL, TrainingConfig(epochs=2, every=3))
    n = len(data.tasks)
    assert set(run.matrices) == set(AFFINITY_METHODS)
    assert all(m.shape == (n, n) for m in run.matrices.values())
    assert all(len(run.trajectories[m]) == 2 for m in AFFINITY_METHODS)
    np.testing.assert_allclose(run.matrices["grad_cosine"], run.matrices["grad_cosine"].T, atol=1e-6)
    np.testing.assert_allclose(np.diag(run.matrices["grad_cosine"]), 1.0, atol=1e-5)
    meta = run.metadata
    assert meta["epochs"] == 2 and meta["affinity_steps"] == meta["training_steps"] // 3 + 1 - (
        meta["training_steps"] % 3 == 0
    )
    assert set(meta["final_val_loss"]) == set(run.tasks) and meta["device"] == "cpu"
    again = AffinityRun.from_dict(json.loads(json.dumps(run.to_dict())))
    np.testing.assert_allclose(again.matrices["tag"], run.matrices["tag"])
    problem = run.to_problem_dict("tag_first_order", singletons="normalized")
    assert problem["tasks"] == run.tasks and problem["objective"] == "max_affinity"
    assert problem["affinity"]["onto_row_from_column"] == again.to_dict()["matrices"]["tag_first_order"]
    assert problem["singletons"] == "normalized" and problem["network_cost"] == 1.0
    assert problem["half_singletons"] is True  # the default: half-size single-task networks allowed
    parsed = parse_problem(problem)  # the selection side reads it as written
    assert parsed.tasks == run.tasks and parsed.half_singletons and parsed.network_costs["half"] == 0.5
    plain = run.to_problem_dict("tag", half_singletons=False)  # TAG's published rule
    assert plain["half_singletons"] is False and plain["singletons"] == "forbid"
    assert not parse_problem(plain).half_singletons
    with pytest.raises(InputError, match="method"):
        compute_affinity(data, ["tag", "nope"], SMALL, TrainingConfig(epochs=1))


def test_resume_after_cancel_gives_the_same_scores(tmp_path):
    data = load_dataset(DatasetSpec(source="synthetic", options={"n_samples": 400, "n_clusters": 2}))
    training = TrainingConfig(epochs=3, every=2)
    straight = compute_affinity(data, ["tag", "grad_cosine"], SMALL, training)
    calls = {"n": 0}

    def cancel_late():
        calls["n"] += 1
        return calls["n"] > 12  # inside epoch 3 (5 steps per epoch)

    with pytest.raises(Cancelled):
        compute_affinity(
            data, ["tag", "grad_cosine"], SMALL, training, should_cancel=cancel_late, checkpoint_dir=tmp_path
        )
    resumed = compute_affinity(data, ["tag", "grad_cosine"], SMALL, training, checkpoint_dir=tmp_path)
    for method in ("tag", "grad_cosine"):
        np.testing.assert_allclose(resumed.matrices[method], straight.matrices[method], rtol=1e-6, atol=1e-9)
        assert len(resumed.trajectories[method]) == 3
    with pytest.raises(InputError, match="checkpoint_dir"):
        compute_affinity(data, ["tag"], SMALL, TrainingConfig(epochs=4), checkpoint_dir=tmp_path)


def test_cli_writes_the_problem_and_rejects_bad_input(tmp_path, capsys):
    out = tmp_path / "a.json"
    code = main(
        [
            "affinity",
            "--dataset",
            "digits-attributes",
            "--method",
            "tag",
            "--method",
            "grad_cosine",
            "--epochs",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    problem = json.loads(out.read_text())
    assert len(problem["tasks"]) == 8 and problem["metadata"]["method"] == "tag"
    assert len(problem["affinity"]["onto_row_from_column"]) == 8
    assert set(problem["metadata"]["matrices"]) == {"tag", "grad_cosine"}
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(100)))
    assert main(["affinity", "--dataset", str(csv), "--task", "z:binary", "--out", str(out)]) == 2
    assert "dataset.tasks.z.column" in capsys.readouterr().err
    assert (
        main(
            ["affinity", "--dataset", str(csv), "--task", "y:binary", "--task", "y:binary", "--out", str(out)]
        )
        == 2
    )
    assert "listed twice" in capsys.readouterr().err


def test_cli_sizes_the_surrogate_and_names_bad_sizes(tmp_path, capsys):
    out = tmp_path / "a.json"
    base = ["affinity", "--dataset", "synthetic", "--epochs", "1", "--out", str(out)]
    assert main([*base, "--hidden-units", "32", "--hidden-layers", "1", "--representation", "8"]) == 0
    model = json.loads(out.read_text())["metadata"]["model"]
    assert (model["hidden_units"], model["hidden_layers"], model["representation"]) == (32, 1, 8)
    with pytest.raises(SystemExit) as refused:  # argparse: before the dataset is even read
        main([*base, "--hidden-units", "0"])
    assert refused.value.code == 2
    assert "argument --hidden-units: must be a whole number >= 1, got '0'" in capsys.readouterr().err
    assert main([*base, "--width", "5"]) == 2  # positive, but above the model's own bound
    assert "model.width" in capsys.readouterr().err
    assert main([*base, "--backbone", "cnn"]) == 2
    assert "model.backbone" in capsys.readouterr().err
