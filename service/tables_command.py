"""``taskgrouper tables`` with a broker configured: the table's networks train on the workers.

Without ``TASKGROUPER_BROKER_URL`` the command is the library's (:mod:`grouping.cli.tables`: a local
process pool, and none of the service's imports). With it, the table becomes a builtin study
(:mod:`service.studies`) on the configured database: its trials go to the training queue, a line
is printed as each one ends, and the table is built from them — the same rows, in the same order,
as the local pool gives (every network is seeded alike). Only a built-in dataset (with its
options) without features or a split of its own travels to the workers (anything else: exit 2
naming ``--dataset``); a trial that fails stops the command with its reason.
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial
from typing import TYPE_CHECKING

from grouping.cli import tables

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from grouping.data import DatasetSpec
    from grouping.tables import NetworkTable, TrainedNetwork
    from grouping.tables.pool import OnDone
    from grouping.training import ModelConfig, TrainingConfig
    from service.models import Trial
    from service.settings import Settings

#: seconds between looks at the study's progress
POLL_SECONDS = 0.5
#: the setting that sends the networks to the workers
BROKER_ENV = "TASKGROUPER_BROKER_URL"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tables`` (the library's command, fanned out when a broker is configured)."""
    tables.register(subparsers)
    subparsers.choices["tables"].set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if not os.environ.get(BROKER_ENV):  # the library's command, without the service's imports
        return tables.run_tables(args)
    from service.settings import Settings

    return tables.run_tables(args, build=partial(table_on_workers, Settings()))


def table_on_workers(settings: Settings, spec: DatasetSpec, method: str, model: ModelConfig,
                     training: TrainingConfig, *, workers: int | None = None, esa_fraction: float = 0.2,
                     on_done: OnDone | None = None) -> NetworkTable:
    """:func:`grouping.tables.build_table`'s table, trained as a builtin study's trials on the workers
    (``workers`` is theirs to decide and is ignored)."""
    from grouping.data import BUILTIN_DATASETS, load_dataset
    from grouping.data.spec import SplitSpec
    from grouping.errors import InputError
    from grouping.tables import NetworkTable, TableRow
    from service import studies
    from service.db import make_engine, make_session_factory
    from service.executor import CeleryExecutor
    from service.schemas import JobTraining
    from service.study_schemas import StudyCreate

    if spec.source not in BUILTIN_DATASETS or spec.features or spec.split != SplitSpec():
        raise InputError("--dataset", "on the workers (a broker is configured) only a built-in dataset "
                         "without --features or --split-column can be trained; unset "
                         "TASKGROUPER_BROKER_URL to train it here")
    names = [task.name for task in spec.tasks] if spec.tasks else load_dataset(spec).task_names
    esa_epochs = max(1, round(esa_fraction * training.epochs)) if method == "esa" else None
    body = StudyCreate(name=f"tables {method} {spec.source}", tasks=names, strategy=method,
                       execution="builtin", dataset=spec.source, dataset_options=spec.options or None,
                       half_singletons=True, seed=training.seed,
                       model=model, training=JobTraining(**training.model_dump()), esa_epochs=esa_epochs)
    engine = make_engine(settings.resolved_database_url, pool_size=1)
    executor = CeleryExecutor(settings)
    try:
        sessions = make_session_factory(engine)
        started = time.perf_counter()
        study = studies.create_study(sessions, body, project=settings.default_project,
                                     max_budgets=settings.max_budgets)
        for trial_id in studies.waiting_trials(sessions, study.id):
            executor.submit_trial(trial_id)
        trials = _wait(sessions, study.id, on_done)
    finally:
        executor.close()
        engine.dispose()
    rows = [TableRow.from_trained(_trained(t)) for t in trials]
    metadata = {"dataset": spec.model_dump(mode="json"), "model": model.model_dump(),
                "training": training.model_dump(), "networks_trained": len(rows),
                "wall_seconds": time.perf_counter() - started, "study_id": study.id}
    if esa_epochs is not None:
        metadata["esa_epochs"] = esa_epochs
    return NetworkTable(names, method, rows, metadata)


def _wait(sessions: sessionmaker[Session], study_id: str, on_done: OnDone | None) -> list[Trial]:
    """The study's trials once it is complete, reporting each as it ends; ``InputError`` naming a
    failed trial's reason."""
    from sqlalchemy import select

    from grouping.errors import InputError
    from service.models import Study, Trial

    reported: set[str] = set()
    while True:
        with sessions() as session:
            state = session.scalar(select(Study.state).where(Study.id == study_id))
            trials = list(session.scalars(select(Trial).where(Trial.study_id == study_id)
                                          .order_by(Trial.number)))
        for trial in trials:
            if trial.state == "failed":
                raise InputError("--dataset", f"network {'+'.join(trial.tasks)} ({trial.size}) failed on "
                                 f"a worker: {(trial.error or {}).get('reason')}")
            if trial.state == "succeeded" and trial.id not in reported:
                reported.add(trial.id)
                if on_done is not None:
                    on_done(len(reported), len(trials), _trained(trial))
        if state == "complete":
            return trials
        time.sleep(POLL_SECONDS)


def _trained(trial: Trial) -> TrainedNetwork:
    from grouping.tables import NetworkJob, TrainedNetwork
    from grouping.tables.build import HALF_WIDTH

    job = NetworkJob(tuple(trial.tasks), 1.0 if trial.size == "full" else HALF_WIDTH, trial.epochs)
    return TrainedNetwork(job, trial.val, trial.test, trial.cost, trial.epochs_run, trial.seconds)
