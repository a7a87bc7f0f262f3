"""``synthetic``: regression tasks generated from shared latent factors with a known structure.

Latent factors z ~ N(0, I) are mixed linearly into the inputs, x = z A + σ ε. Each planted cluster c
owns two latent factors; its tasks read them through the same nonlinearity with a small task-specific
tilt, y_t = tanh(z_c · (a_c + 0.25 e_t)) + σ ε_t, so tasks of one cluster want the same features and tasks
of different clusters want unrelated ones. Each conflicting pair (a, b) shares its signal but carries
opposite label noise, y_a = tanh(2u) + ν, y_b = tanh(2u) − ν with ν ~ N(0, ``conflict_noise``²): the heads
agree on the signal, so a step that fits a's labels on a batch pushes the shared outputs against b's
labels on that batch (and vice versa): their gradients on the shared weights point apart and their
affinity onto each other is negative. ``info`` exposes ``clusters`` and ``conflicting_pairs``.

``label_noise`` (default: ``noise``) is the σ of the cluster tasks' labels alone; with noisy labels
and few training rows, the tasks of a cluster help each other learn their shared features.
``cluster_gain`` g scales cluster c's signal by 1 + g·c, so where clusters compete the stronger one
wins the shared representation predictably rather than by the luck of the initialisation.
``link: "linear"`` drops the tanh (the signal is the unit-variance projection itself), which makes
the cost of losing a cluster's direction in a narrow representation predictable: about its
amplitude² in squared error.
``latent_per_cluster`` sets how many latent factors a cluster owns (2 by default): a network serving
tasks of c clusters needs about c · ``latent_per_cluster`` directions in its shared representation, so a
narrow representation (``ModelConfig.representation``) makes clusters compete for it — real negative
transfer between clusters next to the positive transfer within one. ``task_types: "mixed"`` makes the
m-th task of each cluster a regression (m ≡ 0 mod 3), a binary task (m ≡ 1: the sign of its noisy
signal) or a 4-class task (m ≡ 2: the quartile of its noisy signal), so suites hold the heterogeneous
losses (squared error, BCE, cross-entropy) that a normalised total must weigh equally.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from grouping.data.builtin.base import RawData
from grouping.data.spec import TaskSpec, validated


class SyntheticOptions(BaseModel):
    """Size and structure of the generated data."""

    model_config = ConfigDict(extra="forbid")

    n_samples: int = Field(default=3000, ge=100, le=1_000_000)
    n_features: int = Field(default=24, ge=4, le=4096)
    n_clusters: int = Field(default=3, ge=1, le=64)
    tasks_per_cluster: int = Field(default=3, ge=1, le=64)
    conflicting_pairs: int = Field(default=1, ge=0, le=32)
    noise: float = Field(default=0.1, ge=0.0, le=10.0)
    conflict_noise: float = Field(default=1.0, gt=0.0, le=10.0)
    label_noise: float | None = Field(default=None, ge=0.0, le=10.0)
    latent_per_cluster: int = Field(default=2, ge=1, le=64)
    cluster_gain: float = Field(default=0.0, ge=0.0, le=10.0)
    link: Literal["tanh", "linear"] = "tanh"
    task_types: Literal["regression", "mixed"] = "regression"
    seed: int = 0


#: class count of a ``mixed`` suite's multiclass tasks (quartiles of the signal)
MIXED_CLASSES = 4


def build_synthetic(options: dict[str, Any]) -> RawData:
    """Generate the table: task ``c{k}_t{m}`` is task m of cluster k; ``x{p}_a`` and ``x{p}_b`` form
    conflicting pair p."""
    opts: SyntheticOptions = validated(SyntheticOptions, options, "dataset.options")
    rng = np.random.default_rng(opts.seed)
    n = opts.n_samples
    width = opts.latent_per_cluster
    label_noise = opts.noise if opts.label_noise is None else opts.label_noise
    latent_dim = width * opts.n_clusters + opts.conflicting_pairs
    z = rng.standard_normal((n, latent_dim))
    mixing = rng.standard_normal((latent_dim, opts.n_features)) / np.sqrt(latent_dim)
    x = z @ mixing + opts.noise * rng.standard_normal((n, opts.n_features))
    table: dict[str, np.ndarray] = {f"f{k}": x[:, k].astype(np.float32) for k in range(opts.n_features)}
    clusters: list[list[str]] = []
    types: dict[str, str] = {}
    for c in range(opts.n_clusters):
        zc = z[:, width * c : width * (c + 1)]
        base = rng.standard_normal(width)
        base *= 1.5 / np.linalg.norm(base)
        members = []
        for m in range(opts.tasks_per_cluster):
            direction = base + 0.25 * rng.standard_normal(width)
            name = f"c{c}_t{m}"
            amplitude = 1.0 + opts.cluster_gain * c
            projection = zc @ direction
            link = np.tanh(projection) if opts.link == "tanh" else projection / np.linalg.norm(direction)
            signal = amplitude * link + label_noise * rng.standard_normal(n)
            table[name], types[name] = _label(signal, m if opts.task_types == "mixed" else 0)
            members.append(name)
        clusters.append(members)
    pairs: list[list[str]] = []
    for p in range(opts.conflicting_pairs):
        u = z[:, width * opts.n_clusters + p]
        names = [f"x{p}_a", f"x{p}_b"]
        signal = np.tanh(2.0 * u)
        label_noise = opts.conflict_noise * rng.standard_normal(n)
        for name, sign in zip(names, (1.0, -1.0), strict=True):
            table[name] = (signal + sign * label_noise + opts.noise * rng.standard_normal(n)).astype(
                np.float32
            )
            types[name] = "regression"
        pairs.append(names)
    features = [f"f{k}" for k in range(opts.n_features)]
    tasks = [TaskSpec(name=name, type=types[name]) for name in [*sum(clusters, []), *sum(pairs, [])]]
    return RawData(table, features, tasks, "tabular", {"clusters": clusters, "conflicting_pairs": pairs})


def _label(signal: np.ndarray, kind: int) -> tuple[np.ndarray, str]:
    """The column of a task with a noisy ``signal``: the signal itself (``kind`` ≡ 0 mod 3), its sign
    (≡ 1, binary) or its quartile (≡ 2, :data:`MIXED_CLASSES` classes)."""
    if kind % 3 == 0:
        return signal.astype(np.float32), "regression"
    if kind % 3 == 1:
        return (signal > np.median(signal)).astype(np.int64), "binary"
    edges = np.quantile(signal, np.linspace(0, 1, MIXED_CLASSES + 1)[1:-1])
    return np.searchsorted(edges, signal).astype(np.int64), "multiclass"
