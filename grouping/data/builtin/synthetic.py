"""``synthetic``: regression tasks generated from shared latent factors with a known structure.

Latent factors z ~ N(0, I) are mixed linearly into the inputs, x = z A + σ ε. Each planted cluster c
owns two latent factors; its tasks read them through the same nonlinearity with a small task-specific
tilt, y_t = tanh(z_c · (a_c + 0.25 e_t)) + σ ε_t, so tasks of one cluster want the same features and tasks
of different clusters want unrelated ones. Each conflicting pair (a, b) shares its signal but carries
opposite label noise, y_a = tanh(2u) + ν, y_b = tanh(2u) − ν with ν ~ N(0, ``conflict_noise``²): the heads
agree on the signal, so a step that fits a's labels on a batch pushes the shared outputs against b's
labels on that batch (and vice versa): their gradients on the shared weights point apart and their
affinity onto each other is negative. ``info`` exposes ``clusters`` and ``conflicting_pairs``.
"""

from __future__ import annotations

from typing import Any

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
    seed: int = 0


def build_synthetic(options: dict[str, Any]) -> RawData:
    """Generate the table: task ``c{k}_t{m}`` is task m of cluster k; ``x{p}_a`` and ``x{p}_b`` form
    conflicting pair p."""
    opts: SyntheticOptions = validated(SyntheticOptions, options, "dataset.options")
    rng = np.random.default_rng(opts.seed)
    n = opts.n_samples
    latent_dim = 2 * opts.n_clusters + opts.conflicting_pairs
    z = rng.standard_normal((n, latent_dim))
    mixing = rng.standard_normal((latent_dim, opts.n_features)) / np.sqrt(latent_dim)
    x = z @ mixing + opts.noise * rng.standard_normal((n, opts.n_features))
    table: dict[str, np.ndarray] = {f"f{k}": x[:, k].astype(np.float32) for k in range(opts.n_features)}
    clusters: list[list[str]] = []
    for c in range(opts.n_clusters):
        zc = z[:, 2 * c : 2 * c + 2]
        base = rng.standard_normal(2)
        base *= 1.5 / np.linalg.norm(base)
        members = []
        for m in range(opts.tasks_per_cluster):
            direction = base + 0.25 * rng.standard_normal(2)
            name = f"c{c}_t{m}"
            table[name] = (np.tanh(zc @ direction) + opts.noise * rng.standard_normal(n)).astype(np.float32)
            members.append(name)
        clusters.append(members)
    pairs: list[list[str]] = []
    for p in range(opts.conflicting_pairs):
        u = z[:, 2 * opts.n_clusters + p]
        names = [f"x{p}_a", f"x{p}_b"]
        signal = np.tanh(2.0 * u)
        label_noise = opts.conflict_noise * rng.standard_normal(n)
        for name, sign in zip(names, (1.0, -1.0), strict=True):
            table[name] = (signal + sign * label_noise + opts.noise * rng.standard_normal(n)).astype(
                np.float32
            )
        pairs.append(names)
    features = [f"f{k}" for k in range(opts.n_features)]
    tasks = [TaskSpec(name=name, type="regression") for name in [*sum(clusters, []), *sum(pairs, [])]]
    return RawData(table, features, tasks, "tabular", {"clusters": clusters, "conflicting_pairs": pairs})
