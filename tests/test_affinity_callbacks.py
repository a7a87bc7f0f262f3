"""The Lightning and Hugging Face callbacks: a real ``Trainer`` fit (CPU) with the callback yields a run
that solves as a selection problem and equals the tracker fed by hand over the same steps; the core
import pulls in neither framework."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from grouping.affinity.run import AffinityRun
from grouping.problem import parse_problem
from grouping.selection import solve
from service.client import TaskgrouperClient

TASKS = ["height", "weight", "smoker"]


def make_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = torch.stack([x[:, 0] + x[:, 1], x[:, 0] - 0.5 * x[:, 2], (x[:, 3] > 0).float()], dim=1)
    return x, y


def losses_of(body, towers, x, y):
    z = body(x)
    return {
        "height": F.mse_loss(towers[0](z).squeeze(-1), y[:, 0]),
        "weight": F.smooth_l1_loss(towers[1](z).squeeze(-1), y[:, 1]),
        "smoker": F.binary_cross_entropy_with_logits(towers[2](z).squeeze(-1), y[:, 2]),
    }


def test_core_import_pulls_in_no_framework():
    code = (
        "import sys, grouping.affinity.tracker, grouping.affinity.run, grouping.affinity;"
        "grouping.affinity.compute_affinity;"
        "print(sorted(m for m in ('lightning', 'transformers', 'pytorch_lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _solves(run: AffinityRun, method: str) -> None:
    again = AffinityRun.from_dict(json.loads(json.dumps(run.to_dict())))
    solution = solve(parse_problem(again.to_problem_dict(method)), 2.0)
    assert solution.status == "optimal"
    assert {t for network in solution.networks for t in network.serves} == set(TASKS)


def test_lightning_trainer_fit_with_the_callback(tmp_path, api_client):
    """A real Lightning fit with the callback writes a run that the library solves and that the service
    (embedded on SQLite, and server mode on PostgreSQL) accepts as uploaded and solves the same way."""
    pl = pytest.importorskip("lightning.pytorch")
    from grouping.affinity.lightning import AffinityCallback

    class Health(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU()
            )
            self.towers = nn.ModuleList([nn.Linear(8, 1) for _ in TASKS])

        def task_losses(self, batch):
            return losses_of(self.body, self.towers, *batch)

        def training_step(self, batch, batch_idx):
            return sum(self.task_losses(batch).values())

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=0.01, weight_decay=0.1)

    torch.manual_seed(0)
    module = Health()
    x, y = make_data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    out = tmp_path / "run.json"
    callback = AffinityCallback(
        TASKS, lambda m: m.body.parameters(), every=2, methods=["tag", "tag_first_order"], out=out
    )
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, loader)
    run = AffinityRun.from_dict(json.loads(out.read_text()))
    assert run.metadata["framework"] == "lightning" and run.metadata["model"] == "Health"
    assert run.metadata["optimizer"] == "AdamW" and run.metadata["affinity_steps"] == 6
    assert len(run.trajectories["tag"]) == 2 and np.isfinite(run.matrices["tag"]).all()
    _solves(run, "tag")

    client = TaskgrouperClient(http=api_client, retry=None)
    uploaded = client.upload_affinity(out, name="lightning-fit")
    assert uploaded.tasks == TASKS and uploaded.epochs == 2 and uploaded.metadata["framework"] == "lightning"
    grouping = client.groupings(uploaded.id, 2, method="tag")
    assert grouping.status == "optimal" and grouping.trust is not None
    direct = solve(parse_problem(run.to_problem_dict("tag")), 2.0)
    assert grouping.objective == pytest.approx(direct.objective)


def test_hugging_face_trainer_with_the_callback(tmp_path):
    transformers = pytest.importorskip("transformers")
    from grouping.affinity.huggingface import AffinityTrainerCallback

    class Health(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU())
            self.towers = nn.ModuleList([nn.Linear(8, 1) for _ in TASKS])

        def forward(self, features, labels):
            losses = losses_of(self.encoder, self.towers, features, labels)
            return {"loss": sum(losses.values()), **{f"loss_{t}": v for t, v in losses.items()}}

    class Rows(torch.utils.data.Dataset):
        def __init__(self):
            self.x, self.y = make_data()

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"features": self.x[i], "labels": self.y[i]}

    torch.manual_seed(0)
    model = Health()
    out = tmp_path / "run.json"
    callback = AffinityTrainerCallback(
        TASKS,
        lambda m: m.encoder.parameters(),
        lambda m, inputs: {t: m(**inputs)[f"loss_{t}"] for t in TASKS},
        every=2,
        methods=["tag", "grad_cosine"],
        out=out,
    )
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=16,
        num_train_epochs=2,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        remove_unused_columns=False,
    )
    transformers.Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[callback]).train()
    run = AffinityRun.from_dict(json.loads(out.read_text()))
    assert run.metadata["framework"] == "transformers" and run.metadata["model"] == "Health"
    assert run.metadata["affinity_steps"] == 6 and len(run.trajectories["tag"]) == 2
    assert np.isfinite(run.matrices["tag"]).all()
    _solves(run, "tag")
