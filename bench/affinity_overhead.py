"""Affinity overhead: wall time of plain MTL training vs training with ``tag``, with ``tag_first_order``
and with the naive deep-copy lookahead, on the same model and data (9 tasks, affinity every 10 steps).

Targets (issue 3): tag <= 1.5x plain, tag_first_order <= 1.15x plain, and each affinity step >= 5x
faster than the naive reference. Each run's ratio is the median over round-robin rounds of its time
over the plain run's time in the same round (paired, so drift in machine speed cancels).

The overhead depends on where a step's time goes. Per measured step, both methods add T − 1 backbone
backward passes (the per-task gradients) to the plain step's one forward and one backward; ``tag`` adds T
lookahead forward passes. Where compute dominates (a large backbone), that bounds first order below by
about 1 + 2(T − 1) / (3 · every) = 1.53x for T = 9, every = 10; the default surrogate is small enough
that per-operation overhead dominates instead. ``--hidden-units 1024`` shows the compute-bound case.

Usage: python3 bench/affinity_overhead.py [--device cpu|cuda] [--threads 1] [--epochs 10] [--repeats 5]
[--hidden-units 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from grouping.affinity import compute_affinity
from grouping.affinity.observer import AffinityObserver
from grouping.affinity.reference import naive_tag_step
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
        naive_tag_step(model, optimizer, self.tasks, x, y)
        losses = batch_losses(model, self.tasks, x, y)
        torch.stack([t.weight * losses[k] for k, t in enumerate(self.tasks)]).sum().backward()
        return losses

    def end_epoch(self, epoch):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


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
        observer = AffinityObserver(data.tasks, methods, 1)
        return lambda: [observer.backward(model, optimizer, x, y) for _ in range(10)]

    def plain():
        for _ in range(10):
            model.zero_grad()
            batch_losses(model, data.tasks, x, y).sum().backward()

    def naive():
        for _ in range(10):
            naive_tag_step(model, optimizer, data.tasks, x, y)

    return {
        name: timed(fn, repeats) / 10
        for name, fn in [
            ("plain", plain),
            ("tag", fast(["tag"])),
            ("tag_first_order", fast(["tag_first_order"])),
            ("naive", naive),
        ]
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden-units", type=int, default=ModelConfig().hidden_units)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
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
