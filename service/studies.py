"""Studies in the store: create one, hand out its trials (ask), extend leases (heartbeat), record
results (tell), and plan the strategy's next round (:mod:`grouping.studies`).

Concurrency: any number of API processes serve the same study.

* **ask** claims the lowest-numbered trial that is ``waiting``, or ``running`` with an expired lease
  (the lease is then lost: the trial is handed out again), by a compare-and-set ``UPDATE`` on the
  state and lease it read; on PostgreSQL the candidate is read ``FOR UPDATE SKIP LOCKED`` so that
  concurrent askers take different trials without waiting. A trial that lost its lease
  ``max_attempts`` times fails instead (its ``error`` says so).
* **heartbeat** and **tell** succeed only for the current lease, unexpired, of a running trial (one
  compare-and-set ``UPDATE``); anything else is a :class:`StudyError` naming why (404 unknown trial,
  409 ``finished``, ``lease_lost`` or ``lease_expired``); the next ask hands out a trial whose lease
  expired.
* whoever ends the last running trial (a tell, or an ask that fails one) **advances** the study under
  a lock on its row (an ``UPDATE`` of it, which also serialises SQLite's writers): it plans the
  strategy's next round (:func:`grouping.studies.next_networks`; only ``adaptive`` has one) or
  marks the study ``complete``.
* a builtin trial's **checkpoint** (``trial_checkpoints``, one per trial) is written only under the
  trial's live lease, read by whichever attempt comes next, and removed when the trial ends.

A study's answers (``GET /groupings?study_id=…``) are solved and stored by :mod:`service.study_answers`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from grouping.data import BUILTIN_DATASETS
from grouping.errors import InputError
from grouping.problem import ExplicitProblem
from grouping.studies import MAX_TASKS, Measurement, NetworkKey, StudyPlan, initial_networks, next_networks
from grouping.training import ModelConfig, TrainingConfig
from service.db import transaction
from service.models import Study, Trial, TrialCheckpoint, new_id, utcnow
from service.study_schemas import StudyCreate, StudyOut, StudyProgress, TellRequest, TrialOut

#: trials an ask looks at past the first one another process holds locked (PostgreSQL)
ASK_RETRIES = 8
#: the states of an ended trial
ENDED = ("succeeded", "failed")


class StudyError(Exception):
    """A request the study's state refuses: HTTP ``status``, a ``detail`` naming why, and extras."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


def network_name(tasks: Iterable[str], size: str) -> str:
    """A network's unique name in its study: its size and JSON-encoded task list."""
    return f"{size}:{json.dumps(list(tasks))}"


def default_budgets(n_tasks: int, costs: dict[str, float], half_singletons: bool) -> list[float]:
    """1, 2, … n full networks' cost; in steps of half that with half-size singletons."""
    step = costs["full"] / 2 if half_singletons else costs["full"]
    count = int(round((n_tasks * costs["full"] - costs["full"]) / step))
    return [round(costs["full"] + k * step, 6) for k in range(count + 1)]


def plan_of(study: Study) -> StudyPlan:
    """The library's view of a stored study."""
    return StudyPlan(list(study.tasks), study.strategy, study.value_kind,  # type: ignore[arg-type]
                     dict(study.costs), study.half_singletons, [float(b) for b in study.budgets])


def create_study(sessions: sessionmaker[Session], body: StudyCreate, *, project: str,
                 max_budgets: int) -> Study:
    """Store the study and its first round of trials. ``InputError`` for tasks listed twice, more
    tasks than the strategy accepts, too many budgets, or ``esa_epochs`` with another strategy."""
    if len(set(body.tasks)) != len(body.tasks):
        raise InputError("tasks", "a task is listed twice")
    if len(body.tasks) > MAX_TASKS[body.strategy]:
        raise InputError("tasks", f"the {body.strategy} strategy accepts at most {MAX_TASKS[body.strategy]} "
                         f"tasks, got {len(body.tasks)}")
    if body.esa_epochs is not None and body.strategy != "esa":
        raise InputError("esa_epochs", f"applies only to the esa strategy, not {body.strategy!r}")
    config: dict[str, Any] = {"esa_epochs": body.esa_epochs} if body.esa_epochs else {}
    if body.execution == "builtin":
        if body.dataset not in BUILTIN_DATASETS:
            raise InputError("dataset", f"a builtin study trains on a built-in dataset "
                             f"({', '.join(sorted(BUILTIN_DATASETS))}), got {body.dataset!r}")
        config |= {"dataset": body.dataset, "dataset_options": body.dataset_options or {},
                   "model": (body.model or ModelConfig()).model_dump(mode="json"),
                   "training": (body.training or TrainingConfig()).model_dump(mode="json")}
    else:
        extra = [name for name in ("dataset", "dataset_options", "model", "training")
                 if getattr(body, name) is not None]
        if extra:
            raise InputError(extra[0], "applies only to a builtin study (execution: builtin)")
    costs = body.costs.model_dump()
    budgets = body.budgets or default_budgets(len(body.tasks), costs, body.half_singletons)
    if len(budgets) > max_budgets:
        raise InputError("budgets", f"at most {max_budgets} budgets, got {len(budgets)}")
    study = Study(
        id=new_id(), project=project, name=body.name, tasks=list(body.tasks), strategy=body.strategy,
        execution=body.execution, value_kind=body.value_kind, costs=costs,
        half_singletons=body.half_singletons, budgets=sorted(set(budgets)),
        config=config, seed=body.seed,
        lease_seconds=body.lease_seconds, max_attempts=body.max_attempts, state="running", rounds=1,
        created_at=utcnow(),
    )
    with transaction(sessions) as session:
        session.add(study)
        session.flush()
        _add_trials(session, study, initial_networks(plan_of(study)), 1)
    return study


def _add_trials(session: Session, study: Study, networks: list[NetworkKey], round_: int) -> None:
    first = session.scalar(select(func.count()).select_from(Trial).where(Trial.study_id == study.id)) or 0
    epochs = study.config.get("esa_epochs")
    now = utcnow()
    session.add_all([
        Trial(id=new_id(), study_id=study.id, number=first + k, round=round_,
              network=network_name(tasks, size), tasks=list(tasks), size=size, seed=study.seed,
              epochs=epochs, state="waiting", attempts=0, created_at=now)
        for k, (tasks, size) in enumerate(networks)
    ])


def owned_study(session: Session, study_id: str, project: str) -> Study:
    """The project's study ``study_id`` (404 for a missing one or another project's)."""
    study = session.get(Study, study_id)
    if study is None or study.project != project:
        raise StudyError(404, f"no study {study_id}", field="study_id")
    return study


def progress(session: Session, study_id: str) -> StudyProgress:
    """Trial counts per state."""
    rows = session.execute(
        select(Trial.state, func.count()).where(Trial.study_id == study_id).group_by(Trial.state)
    ).all()
    counts = {state: n for state, n in rows}
    return StudyProgress(**counts, total=sum(counts.values()))


def study_out(session: Session, study: Study) -> StudyOut:
    return StudyOut(
        id=study.id, name=study.name, tasks=study.tasks, strategy=study.strategy, execution=study.execution,
        value_kind=study.value_kind, costs=study.costs, half_singletons=study.half_singletons,
        budgets=study.budgets, seed=study.seed, lease_seconds=study.lease_seconds,
        max_attempts=study.max_attempts, state=study.state, rounds=study.rounds,
        progress=progress(session, study.id), created_at=study.created_at, finished_at=study.finished_at,
        links={"self": f"/studies/{study.id}", "trials": f"/studies/{study.id}/trials",
               "ask": f"/studies/{study.id}/trials:ask", "table": f"/studies/{study.id}/table",
               "groupings": f"/groupings?study_id={study.id}"},
    )


def trial_out(trial: Trial, *, with_lease: bool = False) -> TrialOut:
    return TrialOut(
        id=trial.id, study_id=trial.study_id, number=trial.number, round=trial.round, tasks=trial.tasks,
        size=trial.size, seed=trial.seed, epochs=trial.epochs, state=trial.state, attempts=trial.attempts,
        lease=trial.lease_id if with_lease else None, lease_expires_at=trial.lease_expires_at,
        worker=trial.worker, val=trial.val, test=trial.test, epochs_run=trial.epochs_run, cost=trial.cost,
        seconds=trial.seconds, error=trial.error, created_at=trial.created_at, started_at=trial.started_at,
        finished_at=trial.finished_at, checkpoint_epoch=trial.checkpoint_epoch,
        resumed_from_epoch=trial.resumed_from_epoch,
    )


def ask(sessions: sessionmaker[Session], study_id: str, project: str, worker: str | None) -> Trial | None:
    """Lease the next trial to ``worker``; ``None`` when none is waiting but some still run (ask again
    later). :class:`StudyError` 410 when the study is complete."""
    with transaction(sessions) as session:
        sqlite = session.get_bind().dialect.name == "sqlite"
        if sqlite:  # take SQLite's write lock first: the reads below then see the latest commits
            _lock(session, study_id)
        study = owned_study(session, study_id, project)
        if study.execution == "builtin":
            raise StudyError(409, f"study {study_id} is builtin: its trials run on the workers",
                             reason="builtin")
        now = utcnow()
        _fail_exhausted(session, study, now)
        expired = and_(Trial.state == "running", Trial.lease_expires_at < now)
        claimable = or_(Trial.state == "waiting", expired)
        for _ in range(ASK_RETRIES):
            query = (select(Trial).where(Trial.study_id == study_id, claimable)
                     .order_by(Trial.number).limit(1))
            trial = session.scalar(query if sqlite else query.with_for_update(skip_locked=True))
            if trial is None:
                break
            if _claim(session, study, trial, worker, now):
                return trial
        if _advance(session, study):
            return None
        raise StudyError(410, f"study {study_id} is complete: every trial has ended", reason="complete")


def _claim(session: Session, study: Study, trial: Trial, worker: str | None, now: Any) -> bool:
    """Lease ``trial`` (as read: waiting, or running under an expired lease) to ``worker`` if no one
    changed it since (compare-and-set); ``trial`` is refreshed when claimed."""
    claimed = session.execute(
        update(Trial)
        .where(Trial.id == trial.id, Trial.state == trial.state, _same(Trial.lease_id, trial.lease_id))
        .values(state="running", attempts=Trial.attempts + 1, lease_id=new_id(),
                lease_expires_at=now + timedelta(seconds=study.lease_seconds), heartbeat_at=now,
                worker=worker, started_at=now, resumed_from_epoch=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed:
        session.refresh(trial)
    return bool(claimed)


def claim_trial(sessions: sessionmaker[Session], trial_id: str, worker: str) -> tuple[Trial, Study] | None:
    """A worker's claim of one builtin trial (its queue message): the leased trial and its study, or
    ``None`` when there is nothing to run — the trial is missing or finished (a redelivered message),
    runs under another live lease (a duplicate message), or lost its last allowed lease (it fails)."""
    with transaction(sessions) as session:
        trial = session.get(Trial, trial_id)
        if trial is None or trial.state in ("succeeded", "failed"):
            return None
        study = session.get(Study, trial.study_id)
        now = utcnow()
        _fail_exhausted(session, study, now)
        session.refresh(trial)
        if trial.state == "failed" or (trial.state == "running" and trial.lease_expires_at >= now):
            if trial.state == "failed":
                _advance(session, study)
            return None
        return (trial, study) if _claim(session, study, trial, worker, now) else None


def fail_trial(sessions: sessionmaker[Session], trial_id: str, lease: str, error: dict[str, Any]) -> bool:
    """End the leased trial ``failed`` with ``error`` (its input cannot train: it is not retried); the
    study advances. Whether the lease was still this caller's."""
    with transaction(sessions) as session:
        trial = session.get(Trial, trial_id)
        if trial is None:
            return False
        study = session.get(Study, trial.study_id)
        _lock(session, study.id)
        now = utcnow()
        if not _update_leased(session, trial, lease, now, state="failed", lease_id=None, error=error,
                              finished_at=now):
            return False
        _drop_checkpoint(session, trial_id)
        _advance(session, study)
        return True


def waiting_trials(sessions: sessionmaker[Session], study_id: str, after_round: int = 0) -> list[str]:
    """The ids of the study's waiting trials of rounds after ``after_round``, in order (to publish)."""
    with sessions() as session:
        return list(session.scalars(
            select(Trial.id).where(Trial.study_id == study_id, Trial.state == "waiting",
                                   Trial.round > after_round).order_by(Trial.number)))


def expired_builtin_trials(sessions: sessionmaker[Session]) -> list[str]:
    """One sweep of the workers' trial reaper: builtin trials whose lease expired (their worker died)
    go back to ``waiting``, or fail after ``max_attempts``; the ids to publish again."""
    now = utcnow()
    with transaction(sessions) as session:
        rows = session.execute(
            select(Trial.id, Trial.lease_id, Trial.attempts, Study.max_attempts, Study.id)
            .join(Study, Study.id == Trial.study_id)
            .where(Study.execution == "builtin", Trial.state == "running", Trial.lease_expires_at < now)
        ).all()
        again = []
        for trial_id, lease, attempts, max_attempts, study_id in rows:
            exhausted = attempts >= max_attempts
            values = ({"state": "failed", "finished_at": now,
                       "error": {"reason": f"its worker was lost on each of its {attempts} attempts"}}
                      if exhausted else {"state": "waiting"})
            changed = session.execute(
                update(Trial).where(Trial.id == trial_id, Trial.lease_id == lease, Trial.state == "running")
                .values(lease_id=None, **values).execution_options(synchronize_session=False)
            ).rowcount
            if changed and exhausted:
                _drop_checkpoint(session, trial_id)
                _advance(session, session.get(Study, study_id))
            elif changed:
                again.append(trial_id)
    return again


def save_checkpoint(sessions: sessionmaker[Session], trial_id: str, lease: str, epoch: int, fingerprint: str,
                    data: bytes) -> bool:
    """Store ``data``, the trial's checkpoint after ``epoch`` epochs of run ``fingerprint``, in place
    of the previous one, if ``lease`` is still the trial's live lease (the trial's
    ``checkpoint_epoch`` says which epoch is stored); whether it was stored."""
    with transaction(sessions) as session:
        trial = session.get(Trial, trial_id)
        if trial is None or not _update_leased(session, trial, lease, utcnow(), checkpoint_epoch=epoch):
            return False
        session.merge(TrialCheckpoint(trial_id=trial_id, epoch=epoch, fingerprint=fingerprint, data=data,
                                      created_at=utcnow()))
        return True


def load_checkpoint(sessions: sessionmaker[Session], trial_id: str) -> TrialCheckpoint | None:
    """The trial's stored checkpoint, if any (any attempt may have written it)."""
    with sessions() as session:
        return session.get(TrialCheckpoint, trial_id)


def mark_resumed(sessions: sessionmaker[Session], trial_id: str, lease: str, epoch: int) -> bool:
    """Record that the attempt holding ``lease`` resumed from the checkpoint after ``epoch`` epochs."""
    with transaction(sessions) as session:
        trial = session.get(Trial, trial_id)
        return trial is not None and _update_leased(session, trial, lease, utcnow(), resumed_from_epoch=epoch)


def _drop_checkpoint(session: Session, trial_id: str) -> None:
    """Remove an ended trial's checkpoint (its result is stored)."""
    session.execute(delete(TrialCheckpoint).where(TrialCheckpoint.trial_id == trial_id))


def _same(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def _lock(session: Session, study_id: str) -> None:
    """Lock the study's row (a no-op ``UPDATE``) until this transaction ends."""
    session.execute(update(Study).where(Study.id == study_id).values(rounds=Study.rounds)
                    .execution_options(synchronize_session=False))


def _fail_exhausted(session: Session, study: Study, now: Any) -> None:
    """Fail the running trials whose lease expired for the ``max_attempts``-th time."""
    session.execute(
        update(Trial)
        .where(Trial.study_id == study.id, Trial.state == "running", Trial.lease_expires_at < now,
               Trial.attempts >= study.max_attempts)
        .values(state="failed", lease_id=None, finished_at=now,
                error={"reason": f"lease expired on each of its {study.max_attempts} attempts"})
        .execution_options(synchronize_session=False)
    )


def _advance(session: Session, study: Study) -> bool:
    """Under the study's lock: when no trial waits or runs, add the strategy's next round or mark the
    study complete. Whether trials remain to ask for (now or once running ones end)."""
    _lock(session, study.id)
    session.refresh(study)
    if study.state == "complete":
        return False
    open_trials = session.scalar(
        select(func.count()).select_from(Trial)
        .where(Trial.study_id == study.id, Trial.state.in_(("waiting", "running")))
    )
    if open_trials:
        return True
    trials = session.scalars(select(Trial).where(Trial.study_id == study.id)).all()
    existing = {(tuple(t.tasks), t.size) for t in trials}
    failed = {(tuple(t.tasks), t.size) for t in trials if t.state == "failed"}
    try:
        wanted = next_networks(plan_of(study), measurements(trials), existing, failed)
    except InputError:  # a task no succeeded trial serves: nothing to plan on
        wanted = []
    if wanted:
        study.rounds += 1
        _add_trials(session, study, wanted, study.rounds)
        return True
    study.state, study.finished_at = "complete", utcnow()
    return False


def measurements(trials: Iterable[Trial], split: str = "val") -> list[Measurement]:
    """The succeeded trials' values on ``split`` (``val`` or ``test``; trials told without test
    values are left out of ``test``)."""
    return [Measurement(tuple(t.tasks), t.size, getattr(t, split)) for t in trials
            if t.state == "succeeded" and getattr(t, split)]


def heartbeat(sessions: sessionmaker[Session], trial_id: str, project: str, lease: str) -> Trial:
    """Extend the lease by the study's ``lease_seconds``."""
    with transaction(sessions) as session:
        trial, study = _owned_trial(session, trial_id, project)
        now = utcnow()
        _check_lease(trial, lease, now, "heartbeat")
        if not _update_leased(session, trial, lease, now,
                              lease_expires_at=now + timedelta(seconds=study.lease_seconds),
                              heartbeat_at=now):
            session.refresh(trial)
            _check_lease(trial, lease, now, "heartbeat")
        session.refresh(trial)
        return trial


def tell(sessions: sessionmaker[Session], trial_id: str, project: str, body: TellRequest) -> Trial:
    """Record a trial's values; the study advances when it was the last open trial. ``InputError``
    when ``val``/``test`` do not hold exactly the tasks the network serves."""
    with transaction(sessions) as session:
        trial, study = _owned_trial(session, trial_id, project)
        _lock(session, study.id)
        session.refresh(trial)
        now = utcnow()
        _check_lease(trial, body.lease, now, "tell")
        served = trial.tasks if trial.size == "full" else trial.tasks[:1]
        for split, values in (("val", body.val), ("test", body.test)):
            if values is not None and set(values) != set(served):
                extra = sorted(set(values) - set(served))
                missing = sorted(set(served) - set(values))
                raise InputError(split, f"must hold exactly the tasks the network serves {served}: "
                                 + (f"missing {missing}" if missing else f"not served {extra}"))
        started = trial.started_at or now
        seconds = body.seconds if body.seconds is not None else (now - started).total_seconds()
        if not _update_leased(session, trial, body.lease, now, state="succeeded", lease_id=None,
                              val=dict(body.val), test=dict(body.test) if body.test else None,
                              epochs_run=body.epochs_run, seconds=seconds, finished_at=now,
                              cost=body.cost if body.cost is not None else study.costs[trial.size]):
            session.refresh(trial)
            _check_lease(trial, body.lease, now, "tell")
        _drop_checkpoint(session, trial.id)
        session.refresh(trial)
        _advance(session, study)
        return trial


def _owned_trial(session: Session, trial_id: str, project: str) -> tuple[Trial, Study]:
    trial = session.get(Trial, trial_id)
    study = session.get(Study, trial.study_id) if trial is not None else None
    if trial is None or study is None or study.project != project:
        raise StudyError(404, f"no trial {trial_id}", field="trial_id")
    return trial, study


def _update_leased(session: Session, trial: Trial, lease: str, now: Any, **values: Any) -> bool:
    """Apply ``values`` if ``trial`` runs under ``lease``, unexpired (compare-and-set)."""
    return bool(session.execute(
        update(Trial)
        .where(Trial.id == trial.id, Trial.state == "running", Trial.lease_id == lease,
               Trial.lease_expires_at >= now)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount)


def _check_lease(trial: Trial, lease: str, now: Any, what: str) -> None:
    """:class:`StudyError` 409 unless ``trial`` runs under ``lease``, unexpired (the next ask hands
    out a trial whose lease expired)."""
    if trial.state in ("succeeded", "failed"):
        raise StudyError(409, f"trial {trial.id} has already {trial.state}: it takes no {what}",
                         reason="finished", trial_state=trial.state)
    if trial.lease_id != lease:
        raise StudyError(409, f"lease {lease} is not trial {trial.id}'s current lease: it expired and the "
                         f"trial was handed out again (attempt {trial.attempts})", reason="lease_lost")
    if trial.state != "running" or trial.lease_expires_at is None or trial.lease_expires_at < now:
        expired = trial.lease_expires_at.isoformat() if trial.lease_expires_at else "-"
        raise StudyError(409, f"the lease of trial {trial.id} expired at {expired}; the trial goes to "
                         "the next ask", reason="lease_expired")


def study_trials(session: Session, study_id: str) -> list[Trial]:
    """The study's trials in order."""
    return list(session.scalars(select(Trial).where(Trial.study_id == study_id).order_by(Trial.number)))


def problem_of(study: Study, trials: Iterable[Trial], split: str = "val") -> tuple[ExplicitProblem, int]:
    """The explicit problem of what ``trials`` measured on ``split`` (with the strategy's fill) and
    how many trials it rests on. ``InputError`` (field ``trials``) while a task is unserved."""
    trials = list(trials)
    measured = measurements(trials, split)
    failed = {(tuple(t.tasks), t.size) for t in trials if t.state == "failed"}
    return plan_of(study).problem(measured, failed), len(measured)


def study_problem(session: Session, study: Study, split: str = "val") -> tuple[ExplicitProblem, int]:
    """:func:`problem_of` the study's trials as stored now."""
    return problem_of(study, study_trials(session, study.id), split)
