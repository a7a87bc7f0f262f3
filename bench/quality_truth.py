"""Ground truth of the grouping-quality benchmark: suites, their seed-averaged network tables, and
how well a suite's transfer structure reproduces.

A *generated* suite is a dataset, a surrogate model and a training recipe. Its truth is the exhaustive
table (every task subset as a full-size network plus a half-size network per task, Standley et al.
2020 §3.1) trained once per seed; the tables are cached in ``bench/truth/`` and committed, so a rerun
of the benchmark trains only the methods. Replicate ``r`` of a suite lets every method train with seed
``r`` and scores its selections against the mean test losses of the *other* seeds (leave-one-out), so
a method never sees the noise of the networks that judge it.

A *published* suite is a table someone else measured (MTG-Net's ETTm1, Standley's Taskonomy): one
replicate, truth = its test table, selection on its validation table.

Totals are over per-task STL-relative losses (``"normalize": "stl"`` of the explicit problem: each
task's loss divided by its full-size single-task network's), so squared error, BCE and cross-entropy
weigh equally.

A suite's transfer structure *reproduces* when the pairwise MTL gain matrix
G[a, b] = (L_a({a}) − L_a({a, b})) / L_a({a}) (test losses, ``003_…`` eq. 5 up to its factor 100)
computed from the mean tables of two disjoint halves of the seeds correlates with Pearson r ≥ 0.8.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from grouping.data import DatasetSpec
from grouping.data.spec import SplitSpec
from grouping.tables import NetworkTable, TableRow, build_table
from grouping.training import ModelConfig, TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
TRUTH_DIR = ROOT / "bench" / "truth"
SHARED = ROOT.parent / "shared" / "data"
#: Pearson r of the two seed halves' pair-gain matrices a generated suite must reach to count
REPRODUCIBLE_R = 0.8


@dataclass(frozen=True)
class GeneratedSuite:
    """A dataset, its surrogate model and training recipe, and how many truth seeds to train."""

    name: str
    spec: DatasetSpec
    model: ModelConfig
    training: TrainingConfig
    seeds: int

    def key(self) -> str:
        """A short hash of everything that changes the truth tables."""
        parts = [self.spec.model_dump(mode="json"), self.model.model_dump(), self.training.model_dump()]
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]

    def training_for(self, seed: int) -> TrainingConfig:
        return self.training.model_copy(update={"seed": seed})


def generated_suites(quick: bool = False) -> list[GeneratedSuite]:
    """The generated suites: ``synthetic`` data with val and test splits of 3,015 rows each and 670
    training rows (``quick``: tiny, for a smoke run of the pipeline).

    Each cluster's tasks read the same two latent factors through a tanh with a small task-specific
    tilt, with independent label noise (σ = 0.5); the m-th task of a cluster is a regression, a binary
    or a 4-class task (``task_types: "mixed"``). Few training rows make the tasks of one cluster help
    each other learn their shared features, while tasks of different clusters pull the shared layers
    towards unrelated features: transfer within clusters is positive and across clusters negative
    (the pair-gain tables in the report), and it reproduces across seeds.

    * ``clusters-3x2``: three clusters of two tasks (regression, binary);
    * ``clusters-2x3``: two clusters of three tasks (regression, binary, 4-class).
    """
    rows = 1500 if quick else 6700
    split = SplitSpec(fractions=(0.1, 0.45, 0.45), seed=0)
    training = TrainingConfig(lr=0.05, epochs=3 if quick else 50, patience=6, batch_size=64, every=5,
                              seed=0, device="cpu")
    model = ModelConfig(hidden_units=64, hidden_layers=2, representation=32)
    base = {"n_samples": rows, "conflicting_pairs": 0, "latent_per_cluster": 2, "task_types": "mixed",
            "noise": 0.1, "label_noise": 0.5}
    seeds = 2 if quick else 10
    return [
        GeneratedSuite(name, DatasetSpec(source="synthetic", split=split,
                                         options={**base, "n_clusters": k, "tasks_per_cluster": m}),
                       model, training, seeds)
        for name, k, m in (("clusters-3x2", 3, 2), ("clusters-2x3", 2, 3))
    ]


def truth_tables(suite: GeneratedSuite, workers: int, log: Callable[[str], None],
                 cache: Path = TRUTH_DIR) -> list[NetworkTable]:
    """The exhaustive table of every truth seed, trained where its cache file is missing."""
    folder = cache / f"{suite.name}-{suite.key()}"
    folder.mkdir(parents=True, exist_ok=True)
    tables = []
    for seed in range(suite.seeds):
        path = folder / f"seed{seed}.json"
        if path.exists():
            tables.append(NetworkTable.from_dict(json.loads(path.read_text())))
            continue
        table = build_table(suite.spec, "exhaustive", suite.model, suite.training_for(seed), workers=workers)
        log(f"  truth {suite.name} seed {seed}: {len(table.rows)} networks in "
            f"{table.metadata['wall_seconds']:.0f}s")
        path.write_text(json.dumps(table.to_dict()))
        tables.append(table)
    return tables


def mean_table(tables: Sequence[NetworkTable]) -> NetworkTable:
    """The network-by-network mean of the tables' losses (same networks in every table)."""
    first = tables[0]
    rows = []
    for row in first.rows:
        same = [t.row(row.tasks, row.size) for t in tables]
        rows.append(TableRow(
            row.tasks, row.size,
            {k: float(np.mean([r.val_loss[k] for r in same])) for k in row.val_loss},
            {k: float(np.mean([r.test_loss[k] for r in same])) for k in row.test_loss},
            row.measured_cost, round(float(np.mean([r.epochs_run for r in same]))),
            float(np.mean([r.seconds for r in same]))))
    return NetworkTable(first.tasks, first.method, rows, {"seeds_averaged": len(tables)})


def normalized(problem: Any) -> dict[str, Any]:
    """The explicit problem (object or dict) with STL-relative losses."""
    data = problem if isinstance(problem, dict) else problem.to_dict()
    return {**data, "normalize": "stl"}


def pair_gains(table: NetworkTable, split: str = "test") -> np.ndarray:
    """G[a, b] of the module docstring (NaN diagonal) from ``table``'s ``split`` losses."""
    tasks = table.tasks
    gain = np.full((len(tasks), len(tasks)), np.nan)
    for i, a in enumerate(tasks):
        stl = _loss(table.row((a,)), a, split)
        for j, b in enumerate(tasks):
            if i != j:
                gain[i, j] = (stl - _loss(table.row((a, b)), a, split)) / stl
    return gain


def _loss(row: TableRow, task: str, split: str) -> float:
    return (row.val_loss if split == "val" else row.test_loss)[task]


def split_half_r(tables: Sequence[NetworkTable]) -> float:
    """Pearson r between the pair gains of the even- and odd-numbered seeds' mean tables."""
    a = pair_gains(mean_table(tables[0::2]))
    b = pair_gains(mean_table(tables[1::2]))
    off = ~np.eye(len(a), dtype=bool)
    return float(np.corrcoef(a[off], b[off])[0, 1])


@dataclass(frozen=True)
class PublishedSuite:
    """A table measured by others: validation and test losses of every network, half-size rows where
    the source has them, and ESA losses where it has them."""

    name: str
    source: str
    val: NetworkTable
    test: NetworkTable
    esa: NetworkTable | None = None


def ettm1() -> PublishedSuite:
    """MTG-Net's ETTm1 (``shared/data/mtgnet2022``): all 127 combinations of 7 forecasting tasks.

    The source gives each member's *gain*, its relative improvement over the single-task network;
    the loss relative to that network is 1 − gain (single-task networks: 1), which is already the
    STL-relative loss the other suites use.
    """
    folder = SHARED / "mtgnet2022"
    flags = np.loadtxt(folder / "ETTm1_x.csv")
    tasks = [f"t{k}" for k in range(flags.shape[1])]

    def table(name: str) -> NetworkTable:
        gains = np.loadtxt(folder / name)
        rows = []
        for members, gain in zip(flags, gains, strict=True):
            chosen = tuple(t for t, f in zip(tasks, members, strict=True) if f)
            losses = {t: float(1.0 - gain[tasks.index(t)]) for t in chosen}
            rows.append(TableRow(chosen, "full", losses, losses, 1.0, 0, 0.0))
        return NetworkTable(tasks, "exhaustive", rows, {"source": str(folder / name)})

    return PublishedSuite("ETTm1", "MTG-Net (Song et al. 2022)", table("ETTm1_val_y.csv"),
                          table("ETTm1_y.csv"))


def taskonomy() -> PublishedSuite:
    """Standley et al.'s Taskonomy setting 1 (``shared/data/standley2020``): 31 full-size networks,
    five half-size single-task ones, and the ESA table."""
    folder = SHARED / "standley2020"
    tasks = ["s", "d", "n", "k", "e"]
    groups = [g for size in range(1, 6) for g in combinations(tasks, size)]

    def table(name: str) -> NetworkTable:
        lines = (folder / name).read_text().splitlines()
        cells = [[float(v) if v.strip() else None for v in line.split("\t")] for line in lines]
        rows = [TableRow((t,), "half", {t: cells[0][i]}, {t: cells[0][i]}, 0.5, 0, 0.0)
                for i, t in enumerate(tasks)]
        for group, values in zip(groups, cells[1:], strict=True):
            losses = {t: values[tasks.index(t)] for t in group}
            rows.append(TableRow(group, "full", losses, losses, 1.0, 0, 0.0))
        return NetworkTable(tasks, "exhaustive", rows, {"source": str(folder / name)})

    return PublishedSuite("taskonomy", "Standley et al. 2020", table("setting1_val.tsv"),
                          table("setting1_test.tsv"), table("setting1_esa.tsv"))
