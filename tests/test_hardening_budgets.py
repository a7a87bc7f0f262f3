"""Budgets and solve work are bounded, in both modes (embedded SQLite; server PostgreSQL + Redis):

* a budget beyond any useful spend (n tasks x the largest network cost) is solved at that cap, not
  handed to the solvers as 1e308; problem numbers beyond 1e6 in magnitude are a 422 naming them;
* one request asks for at most ``max_budgets`` budgets, as a range or as a list; its solves' time
  limits sum to at most ``request_solve_seconds``;
* a long curve is stored in batched INSERTs (one statement used to exceed PostgreSQL's 65,535
  parameters and lose every solve).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import _client, stored_job
from sqlalchemy import func, select

from grouping.problem import parse_problem
from grouping.selection import solve
from service import groupings
from service.models import Grouping

pytestmark = [pytest.mark.services]

PROBLEM = {
    "tasks": ["a", "b", "c", "d"],
    "objective": "max_affinity",
    "affinity": {
        "onto_row_from_column": [
            [0.0, 0.5, -0.2, 0.1],
            [0.4, 0.0, 0.1, -0.3],
            [-0.1, 0.2, 0.0, 0.6],
            [0.0, -0.2, 0.7, 0.0],
        ]
    },
    "singletons": "forbid",
    "network_cost": 1.0,
}
EXPLICIT = {
    "tasks": ["a", "b"],
    "objective": "min_loss",
    "networks": [
        {"tasks": ["a"], "cost": 1.0, "loss": {"a": 0.5}},
        {"tasks": ["b"], "cost": 2.0, "loss": {"b": 0.5}},
        {"tasks": ["a", "b"], "cost": 1.0, "loss": {"a": 0.6, "b": 0.7}},
    ],
}
LIMITS = {"max_budgets": 5, "solve_time_limit": 10.0, "request_solve_seconds": 6.0}


@pytest.fixture(params=["sqlite-embedded", "postgres-server"])
def client(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A test client of each mode with small budget limits (:data:`LIMITS`)."""
    name = "embedded_settings" if request.param == "sqlite-embedded" else "server_settings"
    settings = request.getfixturevalue(name).model_copy(update=LIMITS)
    yield from _client(settings)


def add_job(client: Any, problem: dict = PROBLEM) -> str:
    """A succeeded job with a stored network table (no training)."""
    return stored_job(client.app.state.session_factory, client.app.state.settings.default_project,
                      problem=problem, attempts=1)


def stored(client: Any, job_id: str) -> int:
    with client.app.state.session_factory() as session:
        return session.scalar(select(func.count()).select_from(Grouping).where(Grouping.job_id == job_id))


def assert_problem(response: Any, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    if field is not None:
        assert body["field"] == field, body
    return body


def same_selection(a: dict, b: dict) -> bool:
    return a["status"] == b["status"] and a["objective"] == b["objective"] and a["networks"] == b["networks"]


# --- budgets beyond any useful spend ----------------------------------------------------------------


@pytest.mark.parametrize(("problem", "cap"), [(PROBLEM, 4.0), (EXPLICIT, 3.0)])
def test_a_huge_posted_budget_is_solved_at_the_useful_cap(client, problem, cap):
    assert groupings.max_useful_budget(parse_problem(problem)) == cap
    huge = client.post("/groupings", json={"budget": 1e308, "problem": problem})
    assert huge.status_code == 200, huge.text
    at_cap = client.post("/groupings", json={"budget": cap, "problem": problem}).json()
    assert huge.json()["budget"] == 1e308 and same_selection(huge.json(), at_cap)
    assert huge.json()["status"] == "optimal"


def test_a_huge_job_budget_is_solved_at_the_cap_and_stored(client):
    job_id = add_job(client)
    huge = client.get("/groupings", params={"job_id": job_id, "budget": "1e308"})
    assert huge.status_code == 200, huge.text
    assert huge.json()["budget"] == 1e308 and huge.json()["status"] == "optimal"
    direct = solve(parse_problem(PROBLEM), 4.0).to_dict()
    assert huge.json()["objective"] == pytest.approx(direct["objective"])
    again = client.get("/groupings", params={"job_id": job_id, "budget": "1e308"})
    assert again.json()["stored"] is True and same_selection(again.json(), huge.json())


# --- problem numbers ------------------------------------------------------------------------------


def with_entry(value: float) -> dict:
    rows = [list(r) for r in PROBLEM["affinity"]["onto_row_from_column"]]
    rows[0][1] = value
    return {**PROBLEM, "affinity": {"onto_row_from_column": rows}}


@pytest.mark.parametrize("value", [1e308, -1e308, -1e200, 1e7, float("nan"), float("inf")])
def test_affinity_entries_beyond_the_bound_are_422_naming_the_entry(client, value):
    # NaN and Infinity as the (non-standard) tokens Python's JSON parser accepts
    body = json.dumps({"budget": 2, "problem": with_entry(value)})
    response = client.post("/groupings", content=body, headers={"content-type": "application/json"})
    body = assert_problem(response, 422, "problem.affinity.onto_row_from_column[0][1]")
    assert "1e+06" in body["reason"]


def test_affinity_entries_at_the_bound_are_solved(client):
    for value in (1e6, -1e6):
        response = client.post("/groupings", json={"budget": 2, "problem": with_entry(value)})
        assert response.status_code == 200 and response.json()["status"] == "optimal", response.text


@pytest.mark.parametrize(
    ("problem", "field"),
    [
        (
            {**EXPLICIT, "networks": [{**EXPLICIT["networks"][0], "cost": 1e308}, *EXPLICIT["networks"][1:]]},
            "problem.networks[0].cost",
        ),
        (
            {
                **EXPLICIT,
                "networks": [{**EXPLICIT["networks"][0], "loss": {"a": -1e300}}, *EXPLICIT["networks"][1:]],
            },
            "problem.networks[0].loss.a",
        ),
        ({**PROBLEM, "network_cost": 1e300}, "problem.network_cost"),
    ],
)
def test_other_problem_numbers_beyond_the_bound_are_422(client, problem, field):
    assert_problem(client.post("/groupings", json={"budget": 2, "problem": problem}), 422, field)


def test_members_the_parser_ignores_are_not_checked(client):
    """A job's stored table carries its run's metadata (counts, timings); a posted problem may too."""
    problem = {**PROBLEM, "metadata": {"parameters": 4.3e9, "note": "tab\there"}}
    assert client.post("/groupings", json={"budget": 2, "problem": problem}).status_code == 200
    job_id = add_job(client, problem)
    assert client.get("/groupings", params={"job_id": job_id, "budget": 2}).status_code == 200


def test_a_stored_table_beyond_the_bound_is_a_422_not_a_solver_crash(client):
    job_id = add_job(client, with_entry(1e308))
    body = assert_problem(client.get("/groupings", params={"job_id": job_id, "budget": 2}), 422, "method")
    assert "onto_row_from_column[0][1]" in body["reason"]


# --- budgets per request ------------------------------------------------------------------------------


@pytest.mark.parametrize("budgets", ["1:10000:1", "1,2,3,4,5,6", "0.5:3:0.5", "0:1e999999:1e-999999"])
def test_every_form_of_budget_list_is_bounded(client, budgets):
    job_id = add_job(client)
    got = assert_problem(
        client.get("/groupings", params={"job_id": job_id, "budgets": budgets}), 422, "budgets"
    )
    assert "max_budgets" in got["reason"]
    posted = client.post("/groupings", json={"budgets": budgets, "problem": PROBLEM})
    assert "max_budgets" in assert_problem(posted, 422, "budgets")["reason"]
    assert stored(client, job_id) == 0


def test_a_curve_within_the_bound_is_solved(client):
    job_id = add_job(client)
    for budgets in ("1:5:1", "1,2,3,4,5"):
        curve = client.get("/groupings", params={"job_id": job_id, "budgets": budgets})
        assert curve.status_code == 200 and len(curve.json()["curve"]) == 5, curve.text
        posted = client.post("/groupings", json={"budgets": budgets, "problem": PROBLEM})
        assert posted.status_code == 200 and len(posted.json()["curve"]) == 5, posted.text
    assert stored(client, job_id) == 5


@pytest.fixture
def time_limits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The time limit of every solve the service runs (the real solver still runs)."""
    seen: list[float] = []

    def recording(problem: Any, budget: float, **options: Any) -> Any:
        seen.append(options["time_limit"])
        return solve(problem, budget, **options)

    monkeypatch.setattr(groupings, "solve", recording)
    return seen


def test_a_posted_curve_shares_the_request_solve_time(client, time_limits):
    response = client.post("/groupings", json={"budgets": "1,2,3,4", "problem": PROBLEM, "time_limit": 5})
    assert response.status_code == 200, response.text
    assert time_limits == [1.5] * 4  # 6 s shared by 4 budgets, each below the 5 s asked
    time_limits.clear()
    client.post("/groupings", json={"budgets": "2,2,2", "problem": PROBLEM, "time_limit": 5})
    assert time_limits == [5]  # a budget listed three times is solved once
    time_limits.clear()
    client.post("/groupings", json={"budget": 2, "problem": PROBLEM, "time_limit": 50})
    assert time_limits == [6]  # solve_time_limit (10) and the request's total (6) both bound it


def test_a_job_curve_shares_the_request_solve_time_and_stores_only_full_answers(client, monkeypatch):
    limits: list[float] = []

    def cut_short(problem: Any, budget: float, **options: Any) -> Any:
        limits.append(options["time_limit"])
        solution = solve(problem, budget, **options)
        return solution.model_copy(update={"status": "feasible"}) if budget == 3 else solution

    monkeypatch.setattr(groupings, "solve", cut_short)
    job_id = add_job(client)
    curve = client.get("/groupings", params={"job_id": job_id, "budgets": "2,3,4"})
    assert curve.status_code == 200, curve.text
    assert limits == [2.0, 2.0, 2.0]
    assert [p["status"] for p in curve.json()["curve"]] == ["optimal", "feasible", "optimal"]
    # the answer cut short by a shared (reduced) limit is not stored: a later request solves it again
    assert stored(client, job_id) == 2
    single = client.get("/groupings", params={"job_id": job_id, "budget": 3})
    assert single.json()["stored"] is False and limits[-1] == 6.0


def test_a_long_curve_is_stored_in_batches(client, monkeypatch):
    """7,000 budgets x 10 columns is more parameters than one PostgreSQL statement takes."""
    real = solve(parse_problem(PROBLEM), 2.0).to_dict()
    monkeypatch.setattr(groupings, "solve_timed", lambda _p, budget, _s, _t: {**real, "budget": budget})
    job_id = add_job(client)
    budgets = [2 + i / 1000 for i in range(7000)]
    results = groupings.job_groupings(
        client.app.state.session_factory,
        groupings.GroupingKey(job_id, "tag", "bip", "forbid"),
        budgets,
        time_limit=1.0,
        project=client.app.state.settings.default_project,
    )
    assert len(results) == 7000 and not any(from_db for _, _, from_db in results)
    assert stored(client, job_id) == 7000


def test_a_curve_that_stops_keeps_what_it_solved(client):
    job_id = add_job(client)
    asked: list[int] = []

    def stop_after_three() -> bool:
        asked.append(1)
        return len(asked) > 3

    results = groupings.job_groupings(
        client.app.state.session_factory,
        groupings.GroupingKey(job_id, "tag", "bip", "forbid"),
        [2.0, 2.5, 3.0, 3.5, 4.0],
        time_limit=5.0,
        project=client.app.state.settings.default_project,
        should_stop=stop_after_three,
    )
    assert [b for b, _, _ in results] == [2.0, 2.5, 3.0]
    assert stored(client, job_id) == 3
