"""Builtin study trials on the workers: each trial is one queue message (``taskgrouper.run_trial``).

A worker claims the trial with a lease (:func:`service.studies.claim_trial`: a finished trial, or
one another worker holds under a live lease, is left alone, so a redelivered or duplicate message
does nothing), heartbeats the lease while it trains the network (:func:`grouping.tables.train_job`
on the study's built-in dataset, model and training config, seeded with the study's seed) and
tells the result under that lease: the write happens once, the first time, and a worker that lost
its lease meanwhile is refused and drops its result. A trial whose input cannot train (an unknown
task, a diverging loss, a value beyond the API's bounds) fails once with its reason; the others go
on. A worker that dies stops heartbeating: :class:`TrialReaper` (in every worker) gives its trial
back to the queue once the lease expires, until ``max_attempts`` leases were lost.

Checkpoints: while it trains, the lease holder stores the run's epoch-end checkpoint in the
database (:class:`TrialCheckpoints`: every ``trial_checkpoint_every`` epochs, at most
``trial_checkpoint_max_bytes``, never after the last epoch), and the next attempt, on any worker,
resumes from it (the trial's ``resumed_from_epoch``), ending exactly as an uninterrupted run.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from grouping.data import DatasetSpec, load_dataset
from grouping.data.dataset import Dataset
from grouping.errors import InputError
from grouping.studies import ADAPTIVE
from grouping.tables.build import HALF_WIDTH
from grouping.tables.jobs import NetworkJob, train_job
from grouping.training import ModelConfig, TrainingConfig
from service import studies
from service.settings import Settings
from service.study_schemas import TellRequest

log = logging.getLogger(__name__)


@lru_cache(maxsize=2)
def _dataset(name: str, options: str) -> Dataset:
    """A built-in dataset with its options (JSON), loaded once per worker process (loading is
    deterministic)."""
    return load_dataset(DatasetSpec(source=name, options=json.loads(options)))


class TrialCheckpoints:
    """A trial's checkpoints in the database (a :class:`grouping.training.checkpoint.CheckpointStore`):
    written under the attempt's ``lease`` after every ``every``-th epoch before ``epochs`` (a
    checkpoint of a finished run would never be read), skipped beyond ``max_bytes`` serialised."""

    def __init__(self, sessions: sessionmaker[Session], trial_id: str, lease: str, *, epochs: int,
                 every: int, max_bytes: int) -> None:
        self.sessions, self.trial_id, self.lease = sessions, trial_id, lease
        self.epochs, self.every, self.max_bytes = epochs, every, max_bytes

    def load(self, fingerprint: str) -> dict[str, Any] | None:
        """The stored checkpoint of this run (recording the resume on the trial), else ``None``."""
        stored = studies.load_checkpoint(self.sessions, self.trial_id)
        if stored is None:
            return None
        if stored.fingerprint != fingerprint:
            log.warning("trial %s: its checkpoint belongs to a run with other settings; starting afresh",
                        self.trial_id)
            return None
        state = torch.load(io.BytesIO(stored.data), map_location="cpu", weights_only=True)
        studies.mark_resumed(self.sessions, self.trial_id, self.lease, stored.epoch)
        log.info("trial %s resumes after epoch %d", self.trial_id, stored.epoch)
        return state

    def save(self, epoch: int, state: dict[str, Any]) -> None:
        """Store the checkpoint after ``epoch`` epochs when it is due (class docstring)."""
        if epoch % self.every or epoch >= self.epochs:
            return
        buffer = io.BytesIO()
        torch.save(state, buffer)
        if buffer.tell() > self.max_bytes:
            log.warning("trial %s: checkpoint of %d bytes exceeds trial_checkpoint_max_bytes; not stored",
                        self.trial_id, buffer.tell())
            return
        studies.save_checkpoint(self.sessions, self.trial_id, self.lease, epoch, state["fingerprint"],
                                buffer.getvalue())


def run_trial(trial_id: str, sessions: sessionmaker[Session], *, worker: str,
              settings: Settings, stop: threading.Event | None = None) -> list[str]:
    """Train the trial if it is this worker's to run (module docstring; ``settings``' checkpoint
    options); the ids of trials to publish next (the next round of an adaptive study, when this
    trial ended its round)."""
    claimed = studies.claim_trial(sessions, trial_id, worker)
    if claimed is None:
        return []
    trial, study = claimed
    lease, config = trial.lease_id, study.config
    ended = threading.Event()
    beat = threading.Thread(target=_heartbeat, name=f"trial-{trial_id}", daemon=True,
                            args=(sessions, trial_id, study.project, lease, study.lease_seconds / 3, ended))
    beat.start()
    try:
        dataset = _dataset(config["dataset"], json.dumps(config.get("dataset_options") or {}, sort_keys=True))
        unknown = [t for t in trial.tasks if t not in dataset.task_names]
        if unknown:
            raise InputError("tasks", f"{unknown[0]!r} is not a task of {config['dataset']} "
                             f"({', '.join(dataset.task_names)})")
        job = NetworkJob(tuple(trial.tasks), 1.0 if trial.size == "full" else HALF_WIDTH, trial.epochs)
        training = TrainingConfig(**config["training"]).model_copy(update={"seed": trial.seed})
        checkpoints = TrialCheckpoints(sessions, trial_id, lease, epochs=job.epochs or training.epochs,
                                       every=settings.trial_checkpoint_every,
                                       max_bytes=settings.trial_checkpoint_max_bytes)
        net = train_job(dataset, job, ModelConfig(**config["model"]), training,
                        should_cancel=stop.is_set if stop is not None else None, checkpoints=checkpoints)
        served = trial.tasks if trial.size == "full" else trial.tasks[:1]
        body = TellRequest(lease=lease, val={t: net.val_loss[t] for t in served},
                           test={t: net.test_loss[t] for t in served}, epochs_run=net.epochs_run,
                           cost=net.cost, seconds=net.seconds)
    except (InputError, ValidationError) as exc:
        reason = f"{exc.field}: {exc.reason}" if isinstance(exc, InputError) else str(exc).splitlines()[0]
        log.warning("trial %s failed: %s", trial_id, reason)
        studies.fail_trial(sessions, trial_id, lease, {"reason": reason})
        return []
    finally:
        ended.set()
    try:
        studies.tell(sessions, trial_id, study.project, body)
    except studies.StudyError as exc:  # the lease was lost meanwhile: another worker runs the trial
        log.warning("trial %s: result dropped: %s", trial_id, exc.detail)
        return []
    return studies.waiting_trials(sessions, study.id, trial.round) if study.strategy == ADAPTIVE else []


def _heartbeat(sessions: sessionmaker[Session], trial_id: str, project: str, lease: str, every: float,
               ended: threading.Event) -> None:
    while not ended.wait(every):
        try:
            studies.heartbeat(sessions, trial_id, project, lease)
        except studies.StudyError:  # lost: the tell will be refused
            return
        except Exception:  # the database is away for a moment: try again at the next beat
            log.warning("trial %s: heartbeat failed", trial_id, exc_info=True)


class TrialReaper(threading.Thread):
    """Every ``interval`` seconds, publish again the builtin trials whose lease expired
    (:func:`service.studies.expired_builtin_trials`; every worker runs one, each trial is taken back
    once by a compare-and-set)."""

    def __init__(self, sessions: sessionmaker[Session], interval: float,
                 publish: Callable[[str], None]) -> None:
        super().__init__(name="trial-reaper", daemon=True)
        self.sessions, self.interval, self.publish = sessions, interval, publish
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                for trial_id in studies.expired_builtin_trials(self.sessions):
                    self.publish(trial_id)
            except Exception:
                log.warning("trial reaper sweep failed", exc_info=True)

    def stop(self) -> None:
        self.stopped.set()
