"""A study's answers (``GET /groupings?study_id=…``): solved away from the API's requests, stored,
and read back by one cheap query.

An answer is a solution at one budget under one solver, solved on a **measured set**: told values
never change, so the number of ended trials (``ended``: succeeded or failed) identifies the set an
answer rests on. :func:`solve_answers` reads the trials once, solves, and stores one
:class:`~service.models.StudyAnswer` row per budget keyed by ``ended`` — an ``optimal`` solution,
an ``infeasible`` one (with ``min_budget``) or an ``unserved`` one (a task no measured network
serves yet: the ``InputError`` to answer) — then removes the older rows of those budgets. It solves
the budgets asked for plus those already stored for the study and solver (kept fresh for whoever
asks for them), at most ``max_budgets``.

Where it runs: on a worker (``taskgrouper.solve_study_answers`` on the solve queue) or, in embedded
mode, in a child process of the executor (:func:`solve_in_child`) — never in a thread of the API's
request path, except for a *small* study (at most :data:`SYNC_SOLVE_TASKS` tasks: at most 2^8 - 1
candidate networks, measured at about 10 ms to build and solve per budget), which
:func:`study_answers` solves in the request itself so that it is always answered on every trial.

:func:`study_answers` (the API) reads the newest stored answer holding every budget asked for; when
trials ended since, it claims the study's one refresh in the database (:func:`claim_refresh`: at
most one in flight per study whatever the number of API processes, started at most every
:data:`REFRESH_INTERVAL_SECONDS`; a claim past :data:`REFRESH_CLAIM_SECONDS` counts as lost) and
enqueues it through the executor. The answer says
what it rests on (``ended``, ``measured``) and whether it is ``current``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from grouping.errors import InputError
from grouping.problem import ExplicitProblem
from grouping.selection import InfeasibleBudget
from service.db import make_engine, make_session_factory, transaction
from service.groupings import budget_key, solve_timed
from service.jsonsafe import json_safe
from service.models import Study, StudyAnswer, StudyRefresh, Trial, new_id, utcnow
from service.studies import ENDED, StudyError, problem_of, study_trials

log = logging.getLogger(__name__)

#: a study of at most this many tasks is solved in the request when its stored answer is stale
SYNC_SOLVE_TASKS = 8
#: seconds after which a claimed refresh counts as lost and may be claimed again (a slower solve is
#: then merely done twice: rows are written once, and a claim is released only by its own token)
REFRESH_CLAIM_SECONDS = 120.0
#: the least seconds between the starts of two refreshes of one study: a study whose trials keep
#: ending is re-solved at most this often, not back to back on the workers that train its trials
REFRESH_INTERVAL_SECONDS = 5.0
REFRESH_INTERVAL = timedelta(seconds=REFRESH_INTERVAL_SECONDS)
#: the status of a stored answer whose measured set leaves a task unserved
UNSERVED = "unserved"


@dataclass
class Answers:
    """Solutions per budget (``budget_key``) solved on the measured set of ``ended`` ended trials,
    ``measured`` of them succeeded (the trials the answers rest on)."""

    ended: int
    measured: int
    solutions: dict[float, dict[str, Any]]


@dataclass
class StudyAnswers:
    """What ``GET /groupings?study_id=…`` answers: the study's strategy, the trials ended now, and the
    newest stored answers holding every budget asked for (``None``: not solved yet, a refresh is
    queued)."""

    strategy: str
    ended: int
    answers: Answers | None

    @property
    def current(self) -> bool:
        """Whether the answers rest on every trial ended now."""
        return self.answers is not None and self.answers.ended >= self.ended


def _ended(study_id: Any) -> Any:
    """The number of the study's ended trials (a scalar subquery)."""
    return (select(func.count()).select_from(Trial)
            .where(Trial.study_id == study_id, Trial.state.in_(ENDED)).scalar_subquery())


def stored_answers(session: Session, study_id: str, solver: str, budgets: list[float]) -> Answers | None:
    """The answers of the newest measured set stored with every one of ``budgets`` (one query)."""
    rows = session.execute(
        select(StudyAnswer.ended, StudyAnswer.measured, StudyAnswer.budget, StudyAnswer.solution)
        .where(StudyAnswer.study_id == study_id, StudyAnswer.solver == solver,
               StudyAnswer.budget.in_(budgets))
        .order_by(StudyAnswer.ended.desc())
    ).all()
    versions: dict[int, Answers] = {}
    for ended, measured, budget, solution in rows:
        versions.setdefault(ended, Answers(ended, measured, {})).solutions[budget] = solution
    return next((a for a in versions.values() if len(a.solutions) == len(budgets)), None)


def solve_answers(sessions: sessionmaker[Session], study_id: str, solver: str, budgets: list[float], *,
                  time_limit: float, max_budgets: int, token: str | None = None) -> Answers | None:
    """Solve the study's answers at ``budgets`` (plus the study's other stored budgets, at most
    ``max_budgets`` in all) on what is measured now, store them, and release the refresh claim
    ``token``; the answers at ``budgets``, or ``None`` when the study no longer exists. Each budget
    may take ``time_limit`` seconds."""
    wanted = list(dict.fromkeys(budget_key(b) for b in budgets))
    try:
        with sessions() as session:
            study = session.get(Study, study_id)
            if study is None:
                return None
            trials = study_trials(session, study_id)
            known = session.scalars(select(StudyAnswer.budget).distinct()
                                    .where(StudyAnswer.study_id == study_id, StudyAnswer.solver == solver))
            todo = list(dict.fromkeys([*wanted, *known]))[:max(max_budgets, len(wanted))]
            ended = sum(t.state in ENDED for t in trials)
            try:
                problem, measured = problem_of(study, trials)
            except InputError as exc:
                problem, measured = exc, sum(t.state == "succeeded" for t in trials)
        solutions = {b: _solve_one(problem, b, solver, time_limit) for b in todo}
        _store(sessions, study_id, solver, ended, measured, solutions)
    finally:
        if token is not None:
            release_refresh(sessions, study_id, token)
    return Answers(ended, measured, {b: solutions[b] for b in wanted})


def _solve_one(problem: ExplicitProblem | InputError, budget: float, solver: str, time_limit: float
               ) -> dict[str, Any]:
    """A stored answer: the solution, ``infeasible`` (with ``min_budget``) or ``unserved`` (the
    problem could not be built: ``field`` and ``reason`` of its ``InputError``)."""
    if isinstance(problem, InputError):
        return {"status": UNSERVED, "field": problem.field, "reason": problem.reason}
    try:
        return json_safe(solve_timed(problem, budget, solver, time_limit))
    except InfeasibleBudget as exc:
        return {"status": "infeasible", "objective": None, "networks": [], "per_task": {},
                "min_budget": exc.details.get("min_budget")}


def _store(sessions: sessionmaker[Session], study_id: str, solver: str, ended: int, measured: int,
           solutions: dict[float, dict[str, Any]]) -> None:
    """Insert the answers of measured set ``ended`` (skipping rows stored meanwhile) and remove the
    older ones of the same budgets, in one transaction."""
    with transaction(sessions) as session:
        if session.get(Study, study_id) is None:
            return
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        now = utcnow()
        session.execute(insert(StudyAnswer).values([
            {"study_id": study_id, "solver": solver, "ended": ended, "measured": measured, "budget": budget,
             "solution": solution, "created_at": now} for budget, solution in solutions.items()
        ]).on_conflict_do_nothing())
        session.execute(delete(StudyAnswer).where(
            StudyAnswer.study_id == study_id, StudyAnswer.solver == solver,
            StudyAnswer.budget.in_(list(solutions)), StudyAnswer.ended < ended))


def refresh_due(refresh: StudyRefresh | None, now: datetime) -> bool:
    """Whether a study whose refresh row is ``refresh`` may start one now: none was ever claimed, or
    the last one has ended and started at least :data:`REFRESH_INTERVAL_SECONDS` ago, or its claim
    is lost (expired)."""
    return (refresh is None or refresh.expires_at < now
            or (refresh.token is None and refresh.requested_at <= now - REFRESH_INTERVAL))


def claim_refresh(sessions: sessionmaker[Session], study_id: str, ended: int) -> str | None:
    """Claim the study's refresh (a token) when it is due (:func:`refresh_due`); ``None`` when
    another claim is in flight or the last started too recently. One compare-and-set statement."""
    now, token = utcnow(), new_id()
    values = {"token": token, "ended": ended, "requested_at": now,
              "expires_at": now + timedelta(seconds=REFRESH_CLAIM_SECONDS)}
    with transaction(sessions) as session:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        due = or_(StudyRefresh.expires_at < now,
                  and_(StudyRefresh.token.is_(None), StudyRefresh.requested_at <= now - REFRESH_INTERVAL))
        claimed = session.scalar(
            insert(StudyRefresh).values(study_id=study_id, **values)
            .on_conflict_do_update(index_elements=["study_id"], set_=values, where=due)
            .returning(StudyRefresh.token)
        )
    return token if claimed == token else None


def release_refresh(sessions: sessionmaker[Session], study_id: str, token: str) -> None:
    """End the claim ``token`` (a later claim, after it counted as lost, is left alone)."""
    with transaction(sessions) as session:
        session.execute(update(StudyRefresh).where(StudyRefresh.study_id == study_id,
                                                   StudyRefresh.token == token).values(token=None))


#: ``(study_id, solver, budgets, token)`` -> None: queues a refresh (the executor's)
Enqueue = Callable[[str, str, list[float], str], None]


def study_answers(sessions: sessionmaker[Session], study_id: str, project: str, budgets: list[float], *,
                  solver: str, time_limit: float, max_budgets: int, enqueue: Enqueue) -> StudyAnswers:
    """The newest stored answers of the project's study at ``budgets`` (two indexed queries), and
    a refresh queued through ``enqueue`` when trials ended since (claimed first: at most one in
    flight per study). A small study (:data:`SYNC_SOLVE_TASKS`) is instead solved here when its
    stored answers are stale or missing, each budget within ``time_limit`` seconds. 404
    :class:`~service.studies.StudyError` for an unknown study."""
    wanted = list(dict.fromkeys(budget_key(b) for b in budgets))
    with sessions() as session:
        row = session.execute(
            select(Study.project, Study.strategy, Study.tasks, _ended(Study.id), StudyRefresh)
            .outerjoin(StudyRefresh, StudyRefresh.study_id == Study.id).where(Study.id == study_id)
        ).first()
        if row is None or row.project != project:
            raise StudyError(404, f"no study {study_id}", field="study_id")
        strategy, tasks, ended, refresh = row[1:]
        answers = stored_answers(session, study_id, solver, wanted)
    if answers is not None and answers.ended >= ended:
        return StudyAnswers(strategy, ended, answers)
    if len(tasks) <= SYNC_SOLVE_TASKS:
        solved = solve_answers(sessions, study_id, solver, wanted, time_limit=time_limit,
                               max_budgets=max_budgets)
        return StudyAnswers(strategy, solved.ended if solved else ended, solved)
    # most stale reads write nothing: a refresh is claimed only when one is due
    token = claim_refresh(sessions, study_id, ended) if refresh_due(refresh, utcnow()) else None
    if token is not None:
        try:
            enqueue(study_id, solver, wanted, token)
        except Exception:  # the queue is away: let the next request try again
            log.warning("study %s: answers refresh not queued", study_id, exc_info=True)
            release_refresh(sessions, study_id, token)
    return StudyAnswers(strategy, ended, answers)


def answer_solution(answers: Answers, budget: float, *, single: bool) -> dict[str, Any]:
    """The stored solution at ``budget``; ``InputError`` (field ``trials``) for an unserved answer,
    and — for a single budget (``single``) — ``InfeasibleBudget`` for an infeasible one."""
    solution = answers.solutions[budget]
    if solution["status"] == UNSERVED:
        raise InputError(solution["field"], f"{solution['reason']} (as of {answers.ended} ended trials)")
    if single and solution["status"] == "infeasible":
        raise InfeasibleBudget(budget, solution["min_budget"])
    return solution


@lru_cache(maxsize=2)
def _child_sessions(database_url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(database_url, pool_size=1))


def solve_in_child(database_url: str, study_id: str, solver: str, budgets: list[float], token: str, *,
                   time_limit: float, max_budgets: int) -> None:
    """:func:`solve_answers` in a child process of the embedded executor (its own engine)."""
    solve_answers(_child_sessions(database_url), study_id, solver, budgets, time_limit=time_limit,
                  max_budgets=max_budgets, token=token)
