"""A builtin trial's checkpoints in the database (``worker.trials.TrialCheckpoints``): an attempt that
dies after k epochs leaves its checkpoint, and a fresh trainer resumes from it and ends exactly as
the uninterrupted run of the same seed; only the live lease writes, and the trial records the epoch
it resumed from."""

from __future__ import annotations

from pathlib import Path

import pytest

from grouping.data import DatasetSpec, load_dataset
from grouping.tables.jobs import NetworkJob, train_job
from grouping.training import ModelConfig, TrainingConfig
from service import studies
from service.db import make_engine, make_session_factory
from service.migrate import upgrade
from service.models import Trial
from service.settings import Settings
from service.study_schemas import StudyCreate
from worker.trials import TrialCheckpoints

TASKS = ("c0_t0", "c0_t1", "c1_t0")
EPOCHS = 4
MODEL = ModelConfig(hidden_units=16, hidden_layers=1, representation=8)
TRAINING = TrainingConfig(epochs=EPOCHS, batch_size=64, seed=7)


class Died(Exception):
    """The worker's death right after a checkpoint was stored."""


class DyingCheckpoints(TrialCheckpoints):
    """Stores checkpoints as the worker does, and dies once the checkpoint after ``die_after`` is in."""

    def __init__(self, *args, die_after: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.die_after = die_after

    def save(self, epoch: int, state: dict) -> None:
        super().save(epoch, state)
        if epoch == self.die_after:
            raise Died(epoch)


@pytest.fixture
def sessions(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def leased_trial(sessions, study_id: str, worker: str) -> tuple[Trial, str]:
    """The study's first trial, claimed by ``worker``: the trial and its lease."""
    trial, _ = studies.claim_trial(sessions, studies.waiting_trials(sessions, study_id)[0], worker)
    return trial, trial.lease_id


def test_a_trial_resumed_from_its_database_checkpoint_ends_as_the_uninterrupted_run(sessions):
    dataset = load_dataset(DatasetSpec(source="synthetic", options={"n_samples": 400}))
    job = NetworkJob(TASKS)
    uninterrupted = train_job(dataset, job, MODEL, TRAINING)

    study = studies.create_study(sessions, StudyCreate(
        tasks=list(TASKS), strategy="pairwise", execution="builtin", dataset="synthetic", lease_seconds=60,
        max_attempts=3), project="p", max_budgets=100)
    trial, lease = leased_trial(sessions, study.id, "first")
    options = {"epochs": EPOCHS, "every": 1, "max_bytes": Settings().trial_checkpoint_max_bytes}
    with pytest.raises(Died):
        train_job(dataset, job, MODEL, TRAINING,
                  checkpoints=DyingCheckpoints(sessions, trial.id, lease, die_after=2, **options))
    stored = studies.load_checkpoint(sessions, trial.id)
    assert stored is not None and stored.epoch == 2 and len(stored.data) <= options["max_bytes"]

    # the first attempt's lease is lost (its worker died): a second attempt takes the trial over
    with sessions.begin() as session:
        session.get(Trial, trial.id).lease_expires_at = studies.utcnow()
    again, _ = studies.claim_trial(sessions, trial.id, "second")
    second = again.lease_id
    assert again.attempts == 2 and second != lease
    assert not studies.save_checkpoint(sessions, trial.id, lease, 3, stored.fingerprint, b"stale")

    resumed = train_job(dataset, job, MODEL, TRAINING,
                        checkpoints=TrialCheckpoints(sessions, trial.id, second, **options))
    assert resumed.val_loss == uninterrupted.val_loss and resumed.test_loss == uninterrupted.test_loss
    assert resumed.epochs_run == uninterrupted.epochs_run == EPOCHS
    with sessions() as session:
        row = session.get(Trial, trial.id)
        assert row.resumed_from_epoch == 2 and row.checkpoint_epoch == EPOCHS - 1  # none after the last
    assert studies.load_checkpoint(sessions, trial.id).epoch == EPOCHS - 1


def test_a_checkpoint_beyond_the_size_bound_is_not_stored_and_the_run_starts_afresh(sessions):
    dataset = load_dataset(DatasetSpec(source="synthetic", options={"n_samples": 400}))
    study = studies.create_study(sessions, StudyCreate(
        tasks=list(TASKS), strategy="pairwise", execution="builtin", dataset="synthetic"),
        project="p", max_budgets=100)
    trial, lease = leased_trial(sessions, study.id, "only")
    small = TrialCheckpoints(sessions, trial.id, lease, epochs=EPOCHS, every=1, max_bytes=100)
    train_job(dataset, NetworkJob(TASKS), MODEL, TRAINING, checkpoints=small)
    assert studies.load_checkpoint(sessions, trial.id) is None
    assert small.load("any") is None
