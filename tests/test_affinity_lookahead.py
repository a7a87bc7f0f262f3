"""``tag`` equals the slow deep-copy reference for every optimizer; first order tends to it as lr -> 0;
orientation is row = onto, column = from."""

import numpy as np
import pytest
import torch

from grouping.affinity.grad_cosine import cosine_step
from grouping.affinity.gradients import task_gradients
from grouping.affinity.lookahead import lookahead_updates
from grouping.affinity.reference import naive_tag_step
from grouping.affinity.tag_first_order import first_order_inner
from grouping.affinity.tracker import AffinityTracker
from grouping.data import DatasetSpec, load_dataset
from grouping.training import ModelConfig, TrainingConfig, build_model
from grouping.training.loop import batch_losses
from grouping.training.losses import task_loss
from grouping.training.optim import make_optimizer


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    spec = DatasetSpec(
        source="synthetic", options={"n_samples": 300, "n_clusters": 2, "tasks_per_cluster": 2}
    )
    return load_dataset(spec)


def _setup(data, training, tasks=None, warm_steps=3):
    """A float64 network with optimizer state from a few real steps, and a batch."""
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
    return model, optimizer, tasks, x, y


def _fast(model, optimizer, tasks, x, y):
    """One measured step of the tracker on the backbone (gradients zeroed again after its backward)."""
    tracker = AffinityTracker(
        model.backbone.parameters(),
        optimizer,
        [t.name for t in tasks],
        every=1,
        methods=["tag", "tag_first_order"],
        weights=[t.weight for t in tasks],
    )
    tracker.backward(batch_losses(model, tasks, x, y), lambda: batch_losses(model, tasks, x, y))
    optimizer.zero_grad(set_to_none=True)
    return tracker.totals["tag"], tracker.totals["tag_first_order"]


def naive(model, optimizer, tasks, x, y):
    """The deep-copy reference on the backbone of a ``MultiTaskNet``."""
    shared = {name for name, _ in model.named_parameters() if name.startswith("backbone.")}
    return naive_tag_step(
        model, optimizer, shared, lambda m: batch_losses(m, tasks, x, y), [t.weight for t in tasks]
    )


def _gradients(model, tasks, weights, x, y):
    return task_gradients(batch_losses(model, tasks, x, y), list(model.backbone.parameters()), weights)


@pytest.mark.parametrize(
    "training",
    [
        TrainingConfig(optimizer="sgd", lr=0.05),
        TrainingConfig(optimizer="sgd", lr=0.05, weight_decay=0.01),
        TrainingConfig(optimizer="momentum", lr=0.05, momentum=0.9, weight_decay=0.01),
        TrainingConfig(optimizer="adam", lr=0.01, weight_decay=0.01),
    ],
    ids=["sgd", "sgd-wd", "momentum-wd", "adam-wd"],
)
@pytest.mark.parametrize("warm_steps", [0, 3])
def test_tag_matches_deep_copy_reference(data, training, warm_steps):
    model, optimizer, tasks, x, y = _setup(data, training, warm_steps=warm_steps)
    fast, _ = _fast(model, optimizer, tasks, x, y)
    slow = naive(model, optimizer, tasks, x, y)
    np.testing.assert_allclose(fast.numpy(), slow.numpy(), rtol=1e-5, atol=1e-12)


def test_task_weights_scale_the_lookahead_step(data):
    tasks = [
        t.model_copy(update={"weight": w})
        for t, w in zip(data.tasks, [1.0, 2.5, 0.5, 1.0, 1.0, 3.0], strict=True)
    ]
    model, optimizer, tasks, x, y = _setup(data, TrainingConfig(optimizer="adam", lr=0.01), tasks=tasks)
    fast, _ = _fast(model, optimizer, tasks, x, y)
    np.testing.assert_allclose(fast.numpy(), naive(model, optimizer, tasks, x, y).numpy(), rtol=1e-5)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_first_order_agrees_with_tag_as_lr_vanishes(data, optimizer):
    training = TrainingConfig(optimizer=optimizer, lr=1e-6)
    model, opt, tasks, x, y = _setup(data, training)
    tag, first = _fast(model, opt, tasks, x, y)
    big = first.abs() > 1e-2 * first.abs().max()
    ratio = (tag[big] / first[big]).numpy()
    assert np.all(np.abs(ratio - 1.0) < 0.02), ratio
    assert torch.linalg.norm(tag - first) < 0.02 * torch.linalg.norm(first)


def test_orientation_row_is_onto_column_is_from(data):
    """A task with a tiny loss weight barely steps: its column (effect FROM it) is ~0, its row is not."""
    weights = [1.0, 1.0, 1e-9, 1.0, 1.0, 1.0]
    tasks = [t.model_copy(update={"weight": w}) for t, w in zip(data.tasks, weights, strict=True)]
    model, optimizer, tasks, x, y = _setup(data, TrainingConfig(optimizer="sgd", lr=0.1), tasks=tasks)
    fast, _ = _fast(model, optimizer, tasks, x, y)
    assert fast[:, 2].abs().max() < 1e-6
    assert fast[2, [0, 1, 3]].abs().max() > 1e-4


def test_first_order_is_the_papers_inner_product_for_sgd(data):
    """For plain SGD, M[j][i] = lr * w_i * <grad L_j, grad L_i> / L_j (Transference §3.2)."""
    model, optimizer, tasks, x, y = _setup(data, TrainingConfig(optimizer="sgd", lr=0.1))
    _, first = _fast(model, optimizer, tasks, x, y)
    grads = _gradients(model, tasks, torch.ones(len(tasks), dtype=torch.float64), x, y)
    g = torch.cat([s.flatten(1) for s in grads.shared], dim=1)
    expected = 0.1 * (g @ g.T) / grads.losses.unsqueeze(1)
    np.testing.assert_allclose(first.numpy(), expected.numpy(), rtol=1e-10)


def test_task_gradients_match_separate_backward_passes(data):
    """shared[k][t] = grad of w_t L_t (one backward per task), the same through the shared features;
    grad_cosine's Gram is invariant to the task weights; inner() is per unweighted L_j."""
    weights = [1.0, 2.5, 0.5, 1.0, 3.0, 1.0]
    tasks = [t.model_copy(update={"weight": w}) for t, w in zip(data.tasks, weights, strict=True)]
    model, _, tasks, x, y = _setup(data, TrainingConfig(), tasks=tasks)
    w = torch.tensor(weights, dtype=torch.float64)
    grads = _gradients(model, tasks, w, x, y)
    shared = list(model.backbone.parameters())
    for t in range(len(tasks)):
        expected = torch.autograd.grad(w[t] * batch_losses(model, tasks, x, y)[t], shared)
        for got, want in zip(grads.shared, expected, strict=True):
            torch.testing.assert_close(got[t], want, rtol=1e-10, atol=1e-12)
    rep = model.backbone(x)
    losses = torch.stack([task_loss(t.loss, model.heads[t.name](rep), y[t.name]) for t in tasks])
    through_features = task_gradients(losses, shared, w, features=rep)
    one_by_one = task_gradients(losses, shared, w, features=rep, batched=False)
    assert grads.batched and through_features.batched and not one_by_one.batched
    for got, again, want in zip(through_features.shared, one_by_one.shared, grads.shared, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(again, want, rtol=1e-10, atol=1e-12)
    flat = torch.cat([g.flatten(1) for g in grads.shared], dim=1)
    torch.testing.assert_close(grads.inner(grads.shared), (flat / w.unsqueeze(1)) @ flat.T)
    unit = flat / flat.norm(dim=1, keepdim=True)
    torch.testing.assert_close(cosine_step(grads.gram()), unit @ unit.T)


@pytest.mark.parametrize(
    "training",
    [TrainingConfig(optimizer="momentum", lr=0.05, momentum=0.9), TrainingConfig(optimizer="adam", lr=0.01)],
    ids=["momentum", "adam"],
)
def test_tag_matches_the_reference_when_parameters_have_different_optimizer_states(data, training):
    """The first backbone layer sits out the warm-up steps: it has no momentum buffer / Adam state yet
    (or, after one more step, a different step count) while the others have theirs."""
    model, optimizer, tasks, x, y = _setup(data, training, warm_steps=0)
    first = list(model.backbone.parameters())[:2]
    for step in range(4):
        optimizer.zero_grad()
        batch_losses(model, tasks, x, y).sum().backward()
        if step < 3:
            for p in first:
                p.grad = None  # the optimizer skips it: no state, or fewer steps
        optimizer.step()
        if step >= 2:
            fast, _ = _fast(model, optimizer, tasks, x, y)
            slow = naive(model, optimizer, tasks, x, y)
            np.testing.assert_allclose(fast.numpy(), slow.numpy(), rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize(
    "training",
    [
        TrainingConfig(optimizer="sgd", lr=0.05),
        TrainingConfig(optimizer="sgd", lr=0.05, weight_decay=0.01),
        TrainingConfig(optimizer="momentum", lr=0.05, momentum=0.9, weight_decay=0.01),
    ],
    ids=["sgd", "sgd-wd", "momentum-wd"],
)
@pytest.mark.parametrize("warm_steps", [0, 3])
def test_first_order_for_sgd_from_the_gram_matrix_equals_the_inner_product_with_the_updates(
    data, training, warm_steps
):
    weights = [1.0, 2.5, 0.5, 1.0, 3.0, 1.0]
    tasks = [t.model_copy(update={"weight": w}) for t, w in zip(data.tasks, weights, strict=True)]
    model, optimizer, tasks, x, y = _setup(data, training, tasks=tasks, warm_steps=warm_steps)
    grads = _gradients(model, tasks, torch.tensor(weights, dtype=torch.float64), x, y)
    shared = list(model.backbone.parameters())
    updates = lookahead_updates(optimizer, shared, grads.shared)
    torch.testing.assert_close(first_order_inner(optimizer, shared, grads), grads.inner(updates))
