"""``AffinityTracker`` under DistributedDataParallel: 2 CPU processes (gloo), each with half of every
global batch. Every rank's matrices equal one process's on the whole global batch, and the trained
weights are those of DDP without the tracker (both ways of feeding it: ``backward`` on the DDP
forward's losses, and ``measure`` after DDP's own backward)."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from grouping.affinity.tracker import AffinityTracker

TASKS = ["a", "b", "c"]
METHODS = ("tag", "tag_first_order", "grad_cosine")
STEPS = 5
GLOBAL_BATCH = 16


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 6), nn.ReLU())
        self.decoders = nn.ModuleList([nn.Linear(6, 1) for _ in TASKS])

    def forward(self, x):
        z = self.encoder(x)
        return [decoder(z).squeeze(-1) for decoder in self.decoders]


def losses_of(model, batch):
    x, y = batch
    out = model(x)
    return {
        "a": F.mse_loss(out[0], y[:, 0]),
        "b": F.huber_loss(out[1], y[:, 1], delta=0.5),
        "c": F.binary_cross_entropy_with_logits(out[2], (y[:, 2] > 0).double()),
    }


def global_batch(step):
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(GLOBAL_BATCH, 5, generator=g, dtype=torch.float64)
    y = torch.stack([x[:, 0] + x[:, 1], x[:, 0] - x[:, 2], x[:, 3] * x[:, 4]], dim=1)
    return x, y


def train(mode, model, batches, rank_batch=lambda b: b):
    """``STEPS`` AdamW steps; ``mode`` plain (no tracker), backward or measure. Returns the tracker."""
    net = model.module if isinstance(model, DistributedDataParallel) else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.1)
    tracker = AffinityTracker(net.encoder.parameters(), optimizer, TASKS, every=2, methods=METHODS)
    for step in range(STEPS):
        batch = rank_batch(batches(step))
        optimizer.zero_grad()
        losses = losses_of(model, batch)
        if mode == "backward":
            tracker.backward(losses, lambda batch=batch: losses_of(net, batch))
        else:
            sum(losses.values()).backward()
            if mode == "measure":
                tracker.measure(lambda batch=batch: losses_of(net, batch))
        optimizer.step()
    tracker.end_epoch()
    return tracker


def _rank(rank, world, init_file, out):
    """One rank: DDP training without the tracker, then fed each way, from the same initial weights."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        per_rank = GLOBAL_BATCH // world

        def local(batch):
            return tuple(t[rank * per_rank : (rank + 1) * per_rank] for t in batch)

        results = {}
        for mode in ("plain", "backward", "measure"):
            torch.manual_seed(0)
            model = DistributedDataParallel(Net().double())
            run = train(mode, model, global_batch, local).result()
            weights = model.module.state_dict()
            results[mode] = {"weights": weights, "matrices": run.matrices, "metadata": run.metadata}
        torch.save(results, f"{out}.{rank}")
        dist.barrier()  # no rank tears the group down while another still talks to it
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    """Each rank's results by mode."""
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_rank, args=(2, str(tmp / "init"), str(tmp / "out")), nprocs=2, join=True)
    return [torch.load(f"{tmp / 'out'}.{rank}", weights_only=False) for rank in range(2)]


@pytest.fixture(scope="module")
def single():
    torch.manual_seed(0)
    model = Net().double()
    tracker = train("backward", model, global_batch)
    return model.state_dict(), tracker.result()


@pytest.mark.parametrize("mode", ["backward", "measure"])
def test_ddp_matrices_equal_one_process_on_the_global_batch(mode, single, ddp):
    single_weights, single_run = single
    ranks = [results[mode] for results in ddp]
    for result in ranks:
        assert result["metadata"]["world_size"] == 2 and result["metadata"]["affinity_steps"] == 3
        for method in METHODS:
            matrix = result["matrices"][method]
            np.testing.assert_allclose(matrix, single_run.matrices[method], rtol=1e-5, atol=1e-9)
            np.testing.assert_array_equal(matrix, ranks[0]["matrices"][method])  # every rank agrees
    # the tracker changes nothing in DDP's training; and DDP trains what one process does
    for key, value in ddp[0]["plain"]["weights"].items():
        for result in ranks:
            torch.testing.assert_close(result["weights"][key], value, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(single_weights[key], value, rtol=1e-9, atol=1e-12)
