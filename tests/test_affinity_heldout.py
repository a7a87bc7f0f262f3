"""``lookahead_batch="val"``: the lookahead losses measured on a held-out validation batch.

The held-out ``tag`` equals the deep-copy reference (real optimizer steps on the training batch, losses
on the same validation batch) for SGD, momentum and Adam; first order tends to it as lr -> 0 and its
SGD shortcut is exact; the training trajectory is the one without the option; runs are reproducible
and resume to the same scores."""

import json

import numpy as np
import pytest
import torch

from grouping.affinity import compute_affinity
from grouping.affinity.gradients import task_gradients
from grouping.affinity.heldout import HeldOutBatches
from grouping.affinity.lookahead import lookahead_updates
from grouping.affinity.reference import naive_tag_step
from grouping.affinity.surrogate import SurrogateObserver
from grouping.data import DatasetSpec, load_dataset
from grouping.errors import InputError
from grouping.training import Cancelled, ModelConfig, TrainingConfig, build_model
from grouping.training.loop import batch_losses, fit
from grouping.training.optim import make_optimizer
from service.cli import main

SMALL = ModelConfig(hidden_units=32, representation=16)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    spec = DatasetSpec(
        source="synthetic", options={"n_samples": 400, "n_clusters": 2, "tasks_per_cluster": 2}
    )
    return load_dataset(spec)


def _setup(data, training, warm_steps=3, tasks=None):
    """A float64 network with optimizer state from a few real steps, a training batch and the
    observer's first held-out batch (rows of the validation split)."""
    torch.manual_seed(0)
    tasks = tasks or data.tasks
    model = build_model(
        "tabular", data.input_shape, data.output_dims, ModelConfig(hidden_units=16, representation=8)
    ).double()
    optimizer = make_optimizer(model.parameters(), training)
    x = data.train.x[:32].double()
    y = {k: v[:32].double() for k, v in data.train.y.items()}
    for _ in range(warm_steps):
        optimizer.zero_grad()
        batch_losses(model, tasks, x, y).sum().backward()
        optimizer.step()
    held = HeldOutBatches(data.val, 32, seed=training.seed)
    return model, optimizer, tasks, x, y, held


def _observed(model, optimizer, tasks, x, y, held, methods=("tag", "tag_first_order")):
    """One measured step of the observer (float64 scores, M[j][i] = Z_{i->j})."""
    observer = SurrogateObserver(tasks, list(methods), every=1, held_out=held)
    observer.backward(model, optimizer, x, y)
    optimizer.zero_grad(set_to_none=True)
    assert observer.steps == 1 and observer.held_out_draws == 1
    return observer.means()


def naive(model, optimizer, tasks, x, y, held_out=None):
    """The deep-copy reference on the backbone, the losses measured on ``held_out`` when given."""
    shared = {name for name, _ in model.named_parameters() if name.startswith("backbone.")}
    measured = None if held_out is None else (lambda m: batch_losses(m, tasks, *held_out))
    return naive_tag_step(
        model, optimizer, shared, lambda m: batch_losses(m, tasks, x, y), [t.weight for t in tasks], measured
    )


OPTIMIZERS = [
    TrainingConfig(optimizer="sgd", lr=0.05),
    TrainingConfig(optimizer="sgd", lr=0.05, weight_decay=0.01),
    TrainingConfig(optimizer="momentum", lr=0.05, momentum=0.9, weight_decay=0.01),
    TrainingConfig(optimizer="adam", lr=0.01, weight_decay=0.01),
]
OPTIMIZER_IDS = ["sgd", "sgd-wd", "momentum-wd", "adam-wd"]


@pytest.mark.parametrize("training", OPTIMIZERS, ids=OPTIMIZER_IDS)
@pytest.mark.parametrize("warm_steps", [0, 3])
def test_held_out_tag_matches_deep_copy_reference(data, training, warm_steps):
    weights = [1.0, 2.5, 0.5, 1.0, 3.0, 1.0]
    tasks = [t.model_copy(update={"weight": w}) for t, w in zip(data.tasks, weights, strict=True)]
    model, optimizer, tasks, x, y, held = _setup(data, training, warm_steps, tasks)
    fast = _observed(model, optimizer, tasks, x, y, held)["tag"]
    val_batch = held.batch(0, x, y)
    slow = naive(model, optimizer, tasks, x, y, held_out=val_batch)
    np.testing.assert_allclose(fast.numpy(), slow.numpy(), rtol=1e-5, atol=1e-12)
    # the held-out batch is other rows, and measuring there changes the scores
    assert not torch.equal(val_batch[0], x)
    on_train = naive(model, optimizer, tasks, x, y)
    assert np.abs(on_train.numpy() - slow.numpy()).max() > 1e-3 * np.abs(slow.numpy()).max()


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_held_out_first_order_agrees_with_tag_as_lr_vanishes(data, optimizer):
    """lr 1e-7: Adam moves every coordinate by about lr, and at 1e-6 that already carries a few ReLU
    units of this network across their kink on the held-out rows (the gap then stops shrinking with lr)."""
    model, opt, tasks, x, y, held = _setup(data, TrainingConfig(optimizer=optimizer, lr=1e-7))
    scores = _observed(model, opt, tasks, x, y, held)
    tag, first = scores["tag"], scores["tag_first_order"]
    big = first.abs() > 1e-2 * first.abs().max()
    ratio = (tag[big] / first[big]).numpy()
    assert np.all(np.abs(ratio - 1.0) < 1e-3), ratio
    assert torch.linalg.norm(tag - first) < 1e-3 * torch.linalg.norm(first)


@pytest.mark.parametrize("training", OPTIMIZERS, ids=OPTIMIZER_IDS)
def test_held_out_first_order_alone_is_the_inner_product_with_the_training_step(data, training):
    """Without ``tag`` (SGD: the cross-Gram shortcut; others: the simulated updates), first order is
    exactly <grad L_j(V), u_i(X)> / L_j(V), u_i from the training batch X, L_j on the held-out V."""
    weights = [1.0, 2.5, 0.5, 1.0, 3.0, 1.0]
    tasks = [t.model_copy(update={"weight": w}) for t, w in zip(data.tasks, weights, strict=True)]
    model, optimizer, tasks, x, y, held = _setup(data, training, tasks=tasks)
    first = _observed(model, optimizer, tasks, x, y, held, methods=("tag_first_order",))["tag_first_order"]
    w = torch.tensor(weights, dtype=torch.float64)
    shared = list(model.backbone.parameters())
    grads = task_gradients(batch_losses(model, tasks, x, y), shared, w)
    updates = lookahead_updates(optimizer, shared, grads.shared)
    vx, vy = held.batch(0, x, y)
    for j in range(len(tasks)):
        loss = batch_losses(model, tasks, vx, vy)[j]
        grad = torch.autograd.grad(loss, shared)
        for i in range(len(tasks)):
            inner = sum((g * u[i]).sum() for g, u in zip(grad, updates, strict=True))
            torch.testing.assert_close(first[j, i], (inner / loss).detach(), rtol=1e-9, atol=1e-15)


def test_held_out_batches_are_seeded_passes_over_the_validation_split(data):
    held = HeldOutBatches(data.val, 16, seed=3)
    per_pass = len(data.val) // 16
    first_pass = torch.cat([held.indices(k) for k in range(per_pass)])
    assert len(set(first_pass.tolist())) == per_pass * 16  # no row twice within a pass
    again = HeldOutBatches(data.val, 16, seed=3)
    for k in (per_pass + 1, 0, 5 * per_pass + 2):  # any order: a function of (seed, k) only
        assert torch.equal(again.indices(k), held.indices(k))
    assert not torch.equal(held.indices(per_pass), held.indices(0))  # a new shuffle each pass
    assert not torch.equal(HeldOutBatches(data.val, 16, seed=4).indices(0), held.indices(0))
    assert len(HeldOutBatches(data.val, 16, seed=-1).indices(0)) == 16
    with pytest.raises(InputError, match="lookahead_batch"):
        HeldOutBatches(data.val, len(data.val) + 1, seed=0)


def _fit_with(data, training):
    observer = SurrogateObserver(
        data.tasks,
        ["tag", "tag_first_order", "grad_cosine"],
        training.every,
        held_out=HeldOutBatches(data.val, training.batch_size, training.seed)
        if training.lookahead_batch == "val"
        else None,
    )
    torch.manual_seed(123)
    result = fit(data, data.task_names, SMALL, training, observer=observer)
    return result, observer, torch.get_rng_state()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_is_the_same_with_and_without_the_option(data, optimizer):
    base = TrainingConfig(optimizer=optimizer, lr=0.01, epochs=3, every=2, batch_size=32, patience=0)
    plain, plain_obs, plain_rng = _fit_with(data, base)
    held, held_obs, held_rng = _fit_with(data, base.model_copy(update={"lookahead_batch": "val"}))
    assert held.steps == plain.steps and held.epochs_run == plain.epochs_run
    for key, value in plain.model.state_dict().items():
        assert torch.equal(held.model.state_dict()[key], value), key
    assert held.val_loss == plain.val_loss
    assert torch.equal(held_rng, plain_rng)  # the global RNG is not drawn from either
    assert held_obs.held_out_draws == held_obs.steps == plain_obs.steps
    # grad_cosine is measured on the training batch either way; the lookahead scores move
    torch.testing.assert_close(held_obs.means()["grad_cosine"], plain_obs.means()["grad_cosine"])
    assert not torch.allclose(held_obs.means()["tag"], plain_obs.means()["tag"])


def test_held_out_runs_are_reproducible_recorded_and_resume_to_the_same_scores(data, tmp_path):
    training = TrainingConfig(epochs=3, every=2, batch_size=32, seed=5, lookahead_batch="val")
    methods = ["tag", "tag_first_order"]
    first = compute_affinity(data, methods, SMALL, training)
    second = compute_affinity(data, methods, SMALL, training)
    for m in methods:
        np.testing.assert_array_equal(first.matrices[m], second.matrices[m])
    assert first.metadata["lookahead_batch"] == "val"
    assert first.metadata["training"]["lookahead_batch"] == "val"
    plain = compute_affinity(data, methods, SMALL, training.model_copy(update={"lookahead_batch": "train"}))
    assert plain.metadata["lookahead_batch"] == "train"
    assert plain.metadata["final_val_loss"] == first.metadata["final_val_loss"]
    assert not np.allclose(plain.matrices["tag"], first.matrices["tag"])

    calls = {"n": 0}

    def cancel_late():
        calls["n"] += 1
        return calls["n"] > 20  # inside epoch 3 (9 steps per epoch)

    with pytest.raises(Cancelled):
        compute_affinity(data, methods, SMALL, training, should_cancel=cancel_late, checkpoint_dir=tmp_path)
    resumed = compute_affinity(data, methods, SMALL, training, checkpoint_dir=tmp_path)
    for m in methods:
        np.testing.assert_allclose(resumed.matrices[m], first.matrices[m], rtol=1e-6, atol=1e-9)
        assert len(resumed.trajectories[m]) == 3


def test_cli_lookahead_batch_option(tmp_path, capsys):
    out = tmp_path / "a.json"
    base = ["affinity", "--dataset", "synthetic", "--epochs", "1", "--hidden-units", "16", "--out", str(out)]
    assert main([*base, "--lookahead-batch", "val"]) == 0
    meta = json.loads(out.read_text())["metadata"]
    assert meta["lookahead_batch"] == "val" and meta["training"]["lookahead_batch"] == "val"
    assert main(base) == 0
    assert json.loads(out.read_text())["metadata"]["lookahead_batch"] == "train"
    with pytest.raises(SystemExit):
        main([*base, "--lookahead-batch", "test"])
    capsys.readouterr()
    assert main([*base, "--lookahead-batch", "val", "--batch-size", "2000"]) == 2
    assert "training.lookahead_batch" in capsys.readouterr().err
