"""Affinity overhead: wall time of plain MTL training vs training with ``tag``, with ``tag_first_order``
and with the naive deep-copy lookahead, on the same model and data (9 tasks, affinity every 10 steps);
and the same for ``AffinityTracker`` in a user-style loop (``--user-model``): a small ResNet-like CNN
with BatchNorm, AdamW and a DataLoader, 6 tasks with mixed losses, fed by ``tracker.backward``.

Targets (issue 3): tag <= 1.5x plain, tag_first_order <= 1.15x plain, and each affinity step >= 5x
faster than the naive reference. Each run's ratio is the median over round-robin rounds of its time
over the plain run's time in the same round (paired, so drift in machine speed cancels).

The overhead depends on where a step's time goes. Per measured step, both methods add T − 1 backbone
backward passes (the per-task gradients) to the plain step's one forward and one backward; ``tag`` adds T
lookahead forward passes. Where compute dominates (a large backbone), that bounds first order below by
about 1 + 2(T − 1) / (3 · every) = 1.53x for T = 9, every = 10; the default surrogate is small enough
that per-operation overhead dominates instead. ``--hidden-units 1024`` shows the compute-bound case.

Usage: python3 bench/affinity_overhead.py [--device cpu|cuda] [--threads 1] [--epochs 10] [--repeats 5]
[--hidden-units 128] [--user-model] [--channels 16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from grouping.affinity import AffinityTracker, compute_affinity
from grouping.affinity.reference import naive_tag_step
from grouping.affinity.surrogate import SurrogateObserver
from grouping.data import DatasetSpec, load_dataset
from grouping.training import ModelConfig, TrainingConfig
from grouping.training.loop import batch_losses, fit


class NaiveObserver:
    """Every ``every`` steps: the ordinary backward pass plus TAG by deep copies (reference.py)."""

    def __init__(self, tasks, every):
        self.tasks, self.every = tasks, every

    def wants(self, step):
        return step % self.every == 0

    def backward(self, model, optimizer, x, y):
        naive_surrogate_step(model, optimizer, self.tasks, x, y)
        losses = batch_losses(model, self.tasks, x, y)
        torch.stack([t.weight * losses[k] for k, t in enumerate(self.tasks)]).sum().backward()
        return losses

    def end_epoch(self, epoch):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def naive_surrogate_step(model, optimizer, tasks, x, y):
    """The deep-copy reference on the surrogate's backbone."""
    shared = {name for name, _ in model.named_parameters() if name.startswith("backbone.")}
    weights = [t.weight for t in tasks]
    return naive_tag_step(model, optimizer, shared, lambda m: batch_losses(m, tasks, x, y), weights)


def timed(fn, repeats):
    """Best wall time of ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def timed_round_robin(runs, repeats):
    """Wall times of each run over ``repeats`` rounds that take every run in turn, so that drift in the
    machine's speed (other processes, frequency) falls on all of them alike: {name: [seconds, ...]}."""
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            times[name].append(timed(fn, 1))
    return times


def step_times(data, model_cfg, training, repeats):
    """Seconds per affinity step (fast tag, fast first order, naive) on one trained-in state and batch."""
    result = fit(data, data.task_names, model_cfg, training.model_copy(update={"epochs": 1}))
    model = result.model
    optimizer = torch.optim.SGD(model.parameters(), lr=training.lr)
    device = next(model.parameters()).device
    x = data.train.x[: training.batch_size].to(device)
    y = {k: v[: training.batch_size].to(device) for k, v in data.train.y.items()}

    def fast(methods):
        observer = SurrogateObserver(data.tasks, methods, 1)
        return lambda: [observer.backward(model, optimizer, x, y) for _ in range(10)]

    def plain():
        for _ in range(10):
            model.zero_grad()
            batch_losses(model, data.tasks, x, y).sum().backward()

    def naive():
        for _ in range(10):
            naive_surrogate_step(model, optimizer, data.tasks, x, y)

    return {
        name: timed(fn, repeats) / 10
        for name, fn in [
            ("plain", plain),
            ("tag", fast(["tag"])),
            ("tag_first_order", fast(["tag_first_order"])),
            ("naive", naive),
        ]
    }


USER_TASKS = ["digit", "parity", "large", "brightness", "edges", "quadrant"]


class Block(nn.Module):
    """A residual block: two 3x3 convolutions with BatchNorm, a 1x1 projection where the shape changes."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + self.skip(x))


class UserNet(nn.Module):
    """What a user brings: a ResNet-like ``encoder`` (stem, 3 stages of residual blocks, pooling) and a
    ``decoders`` dict, with names of their own."""

    def __init__(self, channels):
        super().__init__()
        c = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            Block(c, c, 1), Block(c, 2 * c, 2), Block(2 * c, 4 * c, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        outputs = {"digit": 10, "parity": 1, "large": 1, "brightness": 1, "edges": 1, "quadrant": 4}
        self.decoders = nn.ModuleDict({t: nn.Linear(4 * c, k) for t, k in outputs.items()})

    def forward(self, x):
        z = self.encoder(x)
        return {t: head(z) for t, head in self.decoders.items()}


def user_losses(model, batch):
    """Mixed losses: cross-entropy with label smoothing, BCE, smooth L1."""
    x, digit, quadrant, target = batch
    out = model(x)
    return {
        "digit": F.cross_entropy(out["digit"], digit, label_smoothing=0.1),
        "parity": F.binary_cross_entropy_with_logits(out["parity"].squeeze(-1), target[:, 0]),
        "large": F.binary_cross_entropy_with_logits(out["large"].squeeze(-1), target[:, 1]),
        "brightness": F.smooth_l1_loss(out["brightness"].squeeze(-1), target[:, 2]),
        "edges": F.smooth_l1_loss(out["edges"].squeeze(-1), target[:, 3]),
        "quadrant": F.cross_entropy(out["quadrant"], quadrant),
    }


def user_data(n=1024, size=16, seed=0):
    """Synthetic 3x16x16 images whose targets depend on shared structure (a random class template)."""
    g = torch.Generator().manual_seed(seed)
    digit = torch.randint(0, 10, (n,), generator=g)
    templates = torch.randn(10, 3, size, size, generator=g)
    x = templates[digit] + 0.5 * torch.randn(n, 3, size, size, generator=g)
    quadrant = torch.randint(0, 4, (n,), generator=g)
    half = size // 2
    for q in range(4):
        rows = quadrant == q
        r, c = divmod(q, 2)
        x[rows, :, r * half : (r + 1) * half, c * half : (c + 1) * half] += 1.0
    target = torch.stack(
        [(digit % 2).float(), (digit >= 5).float(), x.mean((1, 2, 3)), x.diff(dim=-1).abs().mean((1, 2, 3))],
        dim=1,
    )
    return torch.utils.data.TensorDataset(x, digit, quadrant, target)


def user_run(data, channels, epochs, methods, device, naive=False):
    """One training run of the user-style loop: plain (``methods`` empty), with the tracker measuring
    ``methods`` every 10 steps, or with the deep-copy reference every 10 steps (``naive``)."""
    torch.manual_seed(0)
    model = UserNet(channels).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    shuffle = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, generator=shuffle)
    measured = methods or ["tag"]
    tracker = AffinityTracker(model.encoder.parameters(), optimizer, USER_TASKS, every=10, methods=measured)
    shared = {name for name, _ in model.named_parameters() if name.startswith("encoder.")}
    step = 0
    for _ in range(epochs):
        for batch in loader:
            batch = [t.to(device) for t in batch]
            optimizer.zero_grad()
            losses = user_losses(model, batch)
            if methods:
                tracker.backward(losses, lambda batch=batch: user_losses(model, batch))
            else:
                if naive and step % 10 == 0:
                    def stacked(m, batch=batch):
                        return torch.stack(list(user_losses(m, batch).values()))

                    naive_tag_step(model, optimizer, shared, stacked, [1.0] * len(USER_TASKS))
                sum(losses.values()).backward()
            optimizer.step()
            step += 1
        if methods:
            tracker.end_epoch()
    return step


def user_model(args):
    data = user_data()
    device = torch.device(args.device)
    runs = {
        "plain": lambda: user_run(data, args.channels, args.epochs, [], device),
        "tag": lambda: user_run(data, args.channels, args.epochs, ["tag"], device),
        "tag_first_order": lambda: user_run(data, args.channels, args.epochs, ["tag_first_order"], device),
        "all three methods": lambda: user_run(
            data, args.channels, args.epochs, ["tag", "tag_first_order", "grad_cosine"], device
        ),
        "naive deep-copy tag": lambda: user_run(data, args.channels, args.epochs, [], device, naive=True),
    }
    params = sum(p.numel() for p in UserNet(args.channels).parameters())
    steps = args.epochs * -(-len(data) // 64)
    print(
        f"user-style model: ResNet-like CNN with BatchNorm ({params:,} parameters, "
        f"channels={args.channels}), "
        f"AdamW, 6 tasks, 3x16x16 inputs, batch 64, every=10, device={args.device} threads={args.threads} "
        f"epochs={args.epochs} steps={steps} ({args.repeats} round-robin rounds)"
    )
    runs["plain"]()  # warm-up: first-call costs (allocator, kernels) fall on no timed run
    times = timed_round_robin(runs, args.repeats)
    plain = times["plain"]
    print(f"  {'run':22s} {'best':>8s}  {'median of paired ratios':>23s}")
    for name, values in times.items():
        ratio = statistics.median(v / p for v, p in zip(values, plain, strict=True))
        print(f"  {name:22s} {min(values):7.3f}s  {ratio:22.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden-units", type=int, default=ModelConfig().hidden_units)
    parser.add_argument("--user-model", action="store_true", help="time the ResNet-like user model instead")
    parser.add_argument("--channels", type=int, default=16, help="the user model's first-stage channels")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.user_model:
        user_model(args)
        return
    data = load_dataset(DatasetSpec(source="synthetic", options={"conflicting_pairs": 0, "n_samples": 3000}))
    assert len(data.tasks) == 9
    model_cfg = ModelConfig(hidden_units=args.hidden_units)
    training = TrainingConfig(epochs=args.epochs, every=10, patience=0, device=args.device)
    runs = {
        "plain MTL": lambda: fit(data, data.task_names, model_cfg, training),
        "tag": lambda: compute_affinity(data, ["tag"], model_cfg, training),
        "tag_first_order": lambda: compute_affinity(data, ["tag_first_order"], model_cfg, training),
        "naive deep-copy tag": lambda: fit(
            data, data.task_names, model_cfg, training, observer=NaiveObserver(data.tasks, 10)
        ),
    }
    print(
        f"device={args.device} threads={args.threads} tasks=9 every=10 epochs={args.epochs} "
        f"hidden_units={args.hidden_units} steps={args.epochs * -(-len(data.train) // training.batch_size)} "
        f"({args.repeats} round-robin rounds)"
    )
    times = timed_round_robin(runs, args.repeats)
    plain = times["plain MTL"]
    print(f"  {'run':22s} {'best':>8s}  {'best/best':>9s}  {'median of paired ratios':>23s}")
    ratio = {}
    for name, values in times.items():
        ratio[name] = statistics.median(v / p for v, p in zip(values, plain, strict=True))
        print(f"  {name:22s} {min(values):7.3f}s  {min(values) / min(plain):8.2f}x  {ratio[name]:22.2f}x")
    per_step = step_times(data, model_cfg, training, args.repeats)
    print("per affinity step (same state and batch; 'plain' = forward+backward only):")
    for name, value in per_step.items():
        print(f"  {name:22s} {1000 * value:8.2f}ms")
    print(f"  naive / tag             {per_step['naive'] / per_step['tag']:6.1f}x   (target >= 5x)")
    print("run / plain, the median of the paired ratios:")
    print(f"  tag run / plain         {ratio['tag']:6.3f}x   (target <= 1.5x)")
    print(f"  first-order run / plain {ratio['tag_first_order']:6.3f}x   (target <= 1.15x)")


if __name__ == "__main__":
    main()
