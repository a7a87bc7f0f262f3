"""``AffinityTracker`` on a user's own model: any layout (no ``backbone``/``heads``), BatchNorm, custom
losses, every optimizer. Its ``tag`` equals the deep-copy reference that takes real optimizer steps;
a measurement moves no parameter, buffer, optimizer state or random generator; training with the
tracker is training without it; the result solves as a selection problem."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from grouping.affinity.reference import naive_tag_step
from grouping.affinity.run import AffinityRun
from grouping.affinity.tracker import AffinityTracker
from grouping.errors import InputError
from grouping.problem import parse_problem
from grouping.selection import solve

TASKS = ["price", "churn", "segment"]
WEIGHTS = [1.0, 2.0, 0.5]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Recommender(nn.Module):
    """A layout of the user's own: a ``trunk`` with BatchNorm and ``towers`` by task."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 8), nn.Tanh()
        )
        self.towers = nn.ModuleDict(
            {"price": nn.Linear(8, 1), "churn": nn.Linear(8, 1), "segment": nn.Linear(8, 3)}
        )

    def forward(self, x):
        z = self.trunk(x)
        return {name: tower(z) for name, tower in self.towers.items()}


def focal(logits, target, gamma=2.0):
    """A custom loss: the binary focal loss."""
    p = torch.sigmoid(logits)
    pt = torch.where(target > 0.5, p, 1 - p)
    return (-((1 - pt) ** gamma) * torch.log(pt.clamp_min(1e-12))).mean()


def task_losses(model, batch):
    x, price, churn, segment = batch
    out = model(x)
    return {
        "price": F.smooth_l1_loss(out["price"].squeeze(-1), price),
        "churn": focal(out["churn"].squeeze(-1), churn),
        "segment": F.cross_entropy(out["segment"], segment, label_smoothing=0.1),
    }


def make_batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    price = x[:, 0] - 0.5 * x[:, 1] + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    churn = (x[:, 2] + x[:, 0] > 0).double()
    segment = (x[:, 3] > 0).long() + (x[:, 4] > 0.5).long()
    return x, price, churn, segment


OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.05),
    "sgd-momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    "sgd-nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "sgd-dampening-wd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.05),
    "sgd-maximize": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5, maximize=True),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.01),
    "adam-amsgrad": lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    "adamw-amsgrad": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1, amsgrad=True),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.5, weight_decay=0.01),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.05),
}


def setup(optimizer_name, warm_steps=3, dropout=0.0):
    torch.manual_seed(0)
    model = Recommender(dropout).double()
    optimizer = OPTIMIZERS[optimizer_name](model.parameters())
    for step in range(warm_steps):
        optimizer.zero_grad()
        losses = task_losses(model, make_batch(seed=100 + step))
        sum(w * losses[t] for w, t in zip(WEIGHTS, TASKS, strict=True)).backward()
        optimizer.step()
    return model, optimizer


def stack(losses):
    return torch.stack([losses[t] for t in TASKS])


def reference(model, optimizer, batch):
    shared = {name for name, _ in model.named_parameters() if name.startswith("trunk.")}
    return naive_tag_step(model, optimizer, shared, lambda m: stack(task_losses(m, batch)), WEIGHTS)


def tracker_for(model, optimizer, methods=("tag",), every=1):
    shared = model.trunk.parameters()
    return AffinityTracker(shared, optimizer, TASKS, every=every, methods=methods, weights=WEIGHTS)


def snapshot(model, optimizer):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        {
            p: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
            for p, s in optimizer.state.items()
        },
    )


def assert_same_snapshot(a, b):
    (weights_a, state_a), (weights_b, state_b) = a, b
    for key, value in weights_a.items():
        assert torch.equal(weights_b[key], value), key
    assert state_a.keys() == state_b.keys()
    for p, s in state_a.items():
        for key, value in s.items():
            other = state_b[p][key]
            assert torch.equal(other, value) if torch.is_tensor(value) else other == value, key


@pytest.mark.parametrize("optimizer_name", list(OPTIMIZERS))
@pytest.mark.parametrize("warm_steps", [0, 3])
def test_tag_equals_the_deep_copy_reference(optimizer_name, warm_steps):
    """Both ways of feeding the tracker: the training losses (``backward``), or a closure after the
    framework's backward (``measure``). BatchNorm runs on batch statistics in both and in the reference."""
    model, optimizer = setup(optimizer_name, warm_steps)
    batch = make_batch(seed=7)
    slow = reference(model, optimizer, batch)

    optimizer.zero_grad(set_to_none=True)
    before = snapshot(model, optimizer)
    tracker = tracker_for(model, optimizer, methods=("tag", "tag_first_order", "grad_cosine"))
    with torch.no_grad():
        task_losses(model, batch)  # the training forward moves the running statistics once ...
    after_forward = snapshot(model, optimizer)
    assert not torch.equal(after_forward[0]["trunk.1.running_mean"], before[0]["trunk.1.running_mean"])
    for k, v in before[0].items():
        model.state_dict()[k].copy_(v)
    optimizer.zero_grad(set_to_none=True)
    tracker.backward(task_losses(model, batch), lambda: task_losses(model, batch))
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    # ... and the measurement moves nothing: buffers, parameters and optimizer state as after the forward
    assert_same_snapshot(after_forward, snapshot(model, optimizer))
    np.testing.assert_allclose(tracker.means()["tag"].numpy(), slow.numpy(), rtol=1e-5, atol=1e-12)

    # the gradients are those of the ordinary backward of the weighted total
    optimizer.zero_grad(set_to_none=True)
    for k, v in before[0].items():
        model.state_dict()[k].copy_(v)
    losses = task_losses(model, batch)
    sum(w * losses[t] for w, t in zip(WEIGHTS, TASKS, strict=True)).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-12, atol=1e-14)

    framework = tracker_for(model, optimizer, methods=("tag", "tag_first_order", "grad_cosine"))
    assert framework.measure(lambda: task_losses(model, batch))
    assert_same_snapshot(after_forward, snapshot(model, optimizer))  # p.grad untouched, nothing moved
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-12, atol=1e-14)
    for method in tracker.methods:
        np.testing.assert_allclose(framework.means()[method], tracker.means()[method], rtol=1e-9)


@pytest.mark.parametrize("optimizer_name", ["sgd", "adamw", "rmsprop"])
def test_first_order_tends_to_tag_as_the_step_vanishes(optimizer_name):
    model, optimizer = setup(optimizer_name)
    for group in optimizer.param_groups:
        group["lr"] = 1e-7
    batch = make_batch(seed=3)
    tracker = tracker_for(model, optimizer, methods=("tag", "tag_first_order"))
    tracker.measure(lambda: task_losses(model, batch))
    tag, first = tracker.means()["tag"], tracker.means()["tag_first_order"]
    assert torch.linalg.norm(tag - first) < 1e-3 * torch.linalg.norm(first)


def test_adamw_is_not_adam_with_l2():
    """Decoupled decay: AdamW's scores differ from coupled-L2 Adam's at the same settings."""
    batch = make_batch(seed=5)
    scores = {}
    for name, make in [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam)]:
        torch.manual_seed(0)
        model = Recommender().double()
        optimizer = make(model.parameters(), lr=0.01, weight_decay=0.1)
        tracker = tracker_for(model, optimizer)
        tracker.measure(lambda model=model: task_losses(model, batch))
        scores[name] = tracker.means()["tag"]
    assert (scores["adamw"] - scores["adam"]).abs().max() > 1e-4


def test_training_with_the_tracker_is_training_without_it():
    """Dropout and BatchNorm: the same weights, buffers and random state after 6 steps with ``tag``
    measured every 2 steps as with no tracker."""

    def train(with_tracker):
        model, optimizer = setup("adamw", warm_steps=0, dropout=0.3)
        tracker = tracker_for(model, optimizer, methods=("tag", "tag_first_order"), every=2)
        torch.manual_seed(42)
        for step in range(6):
            batch = make_batch(seed=step)
            optimizer.zero_grad()
            losses = task_losses(model, batch)
            if with_tracker:
                tracker.backward(losses, lambda batch=batch: task_losses(model, batch))
            else:
                sum(w * losses[t] for w, t in zip(WEIGHTS, TASKS, strict=True)).backward()
            optimizer.step()
        return model.state_dict(), torch.get_rng_state(), tracker

    plain, plain_rng, _ = train(False)
    tracked, tracked_rng, tracker = train(True)
    for key, value in plain.items():
        torch.testing.assert_close(tracked[key], value, rtol=1e-12, atol=1e-14)
    assert torch.equal(plain_rng, tracked_rng)
    assert tracker.steps == 3 and tracker.calls == 6


def test_a_plain_loop_with_a_dataloader_gives_a_run_that_solves():
    torch.manual_seed(0)
    model = Recommender().double()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    x, price, churn, segment = make_batch(n=256, seed=1)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, price, churn, segment), batch_size=32, shuffle=True
    )
    methods = ("tag", "tag_first_order")
    tracker = AffinityTracker(model.trunk.parameters(), optimizer, TASKS, every=2, methods=methods)
    for _ in range(2):
        for batch in loader:
            optimizer.zero_grad()
            tracker.backward(task_losses(model, batch), lambda batch=batch: task_losses(model, batch))
            optimizer.step()
        tracker.end_epoch()
    run = tracker.result({"model": "Recommender"})
    assert run.metadata["optimizer"] == "AdamW" and run.metadata["affinity_steps"] == 8
    assert run.metadata["model"] == "Recommender" and len(run.trajectories["tag"]) == 2
    again = AffinityRun.from_dict(run.to_dict())
    np.testing.assert_array_equal(again.matrices["tag"], run.matrices["tag"])
    problem = parse_problem(run.to_problem_dict("tag"))
    solution = solve(problem, 2.0)
    assert solution.status == "optimal"
    assert {t for network in solution.networks for t in network.serves} == set(TASKS)


def test_bad_input_is_named():
    model, optimizer = setup("sgd", warm_steps=0)
    with pytest.raises(InputError, match="tasks"):
        AffinityTracker(model.trunk.parameters(), optimizer, ["only"])
    with pytest.raises(InputError, match="methods"):
        AffinityTracker(model.trunk.parameters(), optimizer, TASKS, methods=["lookahead"])
    with pytest.raises(InputError, match="every"):
        AffinityTracker(model.trunk.parameters(), optimizer, TASKS, every=0)
    with pytest.raises(InputError, match="weights"):
        AffinityTracker(model.trunk.parameters(), optimizer, TASKS, weights=[1.0, -1.0, 1.0])
    with pytest.raises(InputError, match="shared"):
        AffinityTracker([nn.Parameter(torch.zeros(2))], optimizer, TASKS)
    tracker = tracker_for(model, optimizer)
    with pytest.raises(InputError, match="no loss for task 'segment'"):
        tracker.backward({"price": torch.tensor(1.0), "churn": torch.tensor(1.0)})
    losses = task_losses(model, make_batch())
    with pytest.raises(InputError, match="closure"):
        tracker.backward(losses)
    assert math.isnan(float(tracker_for(model, optimizer).means()["tag"][0, 0]))
