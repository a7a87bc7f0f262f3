"""A study's answers are solved away from the API and stored (``service.study_answers``): a large
study's ``GET /groupings`` reads the newest stored answer, says what it rests on, and queues at most
one solve per study — on a real Celery worker (PostgreSQL, Redis) in server mode, in the embedded
executor's child process otherwise. Waits follow the stored state, with generous deadlines."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from grouping.problem import parse_problem
from grouping.selection import solve
from service.db import make_engine, make_session_factory
from service.models import StudyRefresh, utcnow
from service.settings import Settings
from service.studies import create_study
from service.study_answers import REFRESH_INTERVAL, SYNC_SOLVE_TASKS, claim_refresh, release_refresh
from service.study_schemas import StudyCreate
from tests.child_processes import Processes, running_in
from tests.conftest import _client, service_env
from tests.test_studies_workers import taskgrouper

TASKS = [f"t{k}" for k in range(SYNC_SOLVE_TASKS + 2)]  # too many to solve in a request
BUDGET = float(len(TASKS))  # affordable on the single-task networks alone


def loss(task: str, group: list[str]) -> float:
    """A known table: a task's loss falls with each partner, more for later tasks."""
    return round(1.0 - 0.05 * (len(group) - 1) + 0.01 * TASKS.index(task), 6)


def tell(http, trial: dict) -> None:
    values = {t: loss(t, trial["tasks"]) for t in trial["tasks"]}
    told = http.post(f"/trials/{trial['id']}:tell", json={"lease": trial["lease"], "val": values})
    assert told.status_code == 200, told.text


def tell_singles(http, study_id: str) -> dict:
    """Tell the single-task trials (they come first); the first pair trial, asked for and held."""
    while len((trial := http.post(f"/studies/{study_id}/trials:ask").json())["tasks"]) == 1:
        tell(http, trial)
    return trial


def tell_all(http, study_id: str) -> None:
    while (got := http.post(f"/studies/{study_id}/trials:ask")).status_code == 200:
        tell(http, got.json())


def wait_for(get: Callable[[], object], done: Callable[[object], bool], what: str, seconds: float = 600):
    """``get()`` until ``done`` holds of it (polled), failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not done(answer := get()):
        assert time.monotonic() < deadline, f"{what}: still {answer}"
        time.sleep(0.2)
    return answer


def grouping(http, study_id: str):
    return http.get("/groupings", params={"study_id": study_id, "budget": BUDGET})


def check_study_answers(http, start_solver: Callable[[], None] | None = None) -> None:
    """The flow both modes share (``start_solver`` starts the worker after the first requests)."""
    study = http.post("/studies", json={"tasks": TASKS, "strategy": "pairwise"}).json()
    study_id = study["id"]
    first = grouping(http, study_id)
    assert first.status_code == 202 and first.json()["status"] == "solving", first.text
    assert first.headers["Retry-After"] and first.json()["ended"] == 0
    if start_solver is not None:  # nothing solves it meanwhile: the API never does, it only queued
        assert grouping(http, study_id).status_code == 202
        start_solver()
    unserved = wait_for(lambda: grouping(http, study_id), lambda r: r.status_code != 202, "first solve")
    assert unserved.status_code == 422 and unserved.json()["field"] == "trials", unserved.text

    pair = tell_singles(http, study_id)
    singles = wait_for(lambda: grouping(http, study_id),
                       lambda r: r.status_code == 200 and r.json()["current"], "answer on the singles")
    assert singles.json()["trials"] == len(TASKS) and singles.json()["ended"] == len(TASKS)

    # a trial ends: the stored answer comes back at once, saying it is not current
    tell(http, pair)
    stale = grouping(http, study_id).json()
    assert stale["current"] is False and stale["ended"] == len(TASKS) and stale["trials"] == len(TASKS)

    tell_all(http, study_id)
    assert http.get(f"/studies/{study_id}").json()["state"] == "complete"
    n = len(TASKS) * (len(TASKS) + 1) // 2
    final = wait_for(lambda: grouping(http, study_id).json(), lambda a: a.get("current") is True, "final")
    assert final["trials"] == n and final["ended"] == n
    problem = parse_problem(http.get(f"/studies/{study_id}/table").json())
    assert final["objective"] == pytest.approx(solve(problem, BUDGET).objective, abs=1e-9)
    curve = wait_for(lambda: http.get("/groupings", params={"study_id": study_id, "budgets": "1:3:1"}),
                     lambda r: r.status_code == 200, "curve")
    assert [p["budget"] for p in curve.json()["curve"]] == [1.0, 2.0, 3.0] and curve.json()["trials"] == n


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    yield from running_in(tmp_path)


@pytest.fixture
def settings(server_settings: Settings, private_db: str) -> Settings:
    """A database and queues of this test alone."""
    tag = uuid.uuid4().hex[:8]
    return server_settings.model_copy(update={
        "database_url": private_db,
        "training_queue": f"{server_settings.training_queue}-{tag}",
        "solve_queue": f"{server_settings.solve_queue}-{tag}",
    })


@pytest.mark.services
def test_a_large_studys_answers_are_solved_on_a_worker_and_stored(settings: Settings, processes: Processes):
    def start_worker() -> None:
        processes.start("solver", [*taskgrouper(), "worker", "--queues", settings.solve_queue,
                                   "--loglevel", "WARNING"], service_env(settings))

    for http in _client(settings):
        check_study_answers(http, start_worker)


def test_a_large_studys_answers_are_solved_in_the_embedded_child_process(embedded_client):
    check_study_answers(embedded_client)


@pytest.mark.services
def test_one_refresh_claim_per_study_until_released_or_expired(private_db: str):
    engine = make_engine(private_db, pool_size=1)
    sessions = make_session_factory(engine)
    try:
        study = create_study(sessions, StudyCreate(tasks=["a", "b"]), project="p", max_budgets=10)
        token = claim_refresh(sessions, study.id, 0)
        assert token is not None and claim_refresh(sessions, study.id, 1) is None
        release_refresh(sessions, study.id, "not-the-token")
        assert claim_refresh(sessions, study.id, 1) is None
        release_refresh(sessions, study.id, token)
        assert claim_refresh(sessions, study.id, 1) is None  # the last one started too recently
        with sessions.begin() as session:
            session.execute(update(StudyRefresh).values(requested_at=utcnow() - REFRESH_INTERVAL))
        again = claim_refresh(sessions, study.id, 1)
        assert again is not None and again != token
        with sessions.begin() as session:  # the claim's solver was lost: past its expiry it is taken over
            session.execute(update(StudyRefresh).values(expires_at=utcnow() - timedelta(seconds=1)))
        assert claim_refresh(sessions, study.id, 2) not in (None, again)
    finally:
        engine.dispose()
