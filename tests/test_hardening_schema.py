"""The OpenAPI document states the rules a request's own shape obeys, and the API agrees with it
(PostgreSQL + Redis server mode and embedded SQLite):

* exactly one of ``budget`` and ``budgets`` (``POST /groupings``' body, and ``GET /groupings``' query
  stated as one object parameter); ``budgets``' syntax;
* a job's ``tasks`` non-empty, each task's loss fitting its type, a non-zero ``momentum`` only with
  optimizer ``momentum``, ``warm_start`` options only with that method, split fractions in (0, 1);
* what a posted ``problem`` requires (its explicit and affinity forms);
* ids in a path are made of letters, digits, '-' and '_', and text patterns compile in the regex
  engines schema tools use (no lone surrogates named);
* a 405 names in ``Allow`` every method of the path, not only the first route's.

Each body below is checked both ways: against the schema (``jsonschema_rs``) and against the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from conftest import _client
from test_service_api import PROBLEM, assert_problem

from service.routes.groupings import GET_QUERY
from service.schemas import BUDGETS_PATTERN, ID_PATTERN, TEXT_PATTERN, JobCreate, SolveRequest
from service.settings import Settings

pytestmark = [pytest.mark.services]

SOLVE = jsonschema_rs.validator_for(SolveRequest.model_json_schema())
JOB = jsonschema_rs.validator_for(JobCreate.model_json_schema())
QUERY = jsonschema_rs.validator_for(GET_QUERY["schema"])
EXPLICIT = {
    "tasks": ["a", "b"],
    "objective": "min_loss",
    "networks": [
        {"tasks": ["a", "b"], "loss": {"a": 1.0, "b": 1.0}},
        {"tasks": ["a"], "loss": {"a": 0.9}},
        {"tasks": ["b"], "loss": {"b": 0.8}},
    ],
}


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"problem": PROBLEM, "budget": 2}, True),
        ({"problem": PROBLEM, "budgets": "1:3:1"}, True),
        ({"problem": PROBLEM, "budgets": "1, 2,4"}, True),
        ({"problem": PROBLEM, "budget": 2, "budgets": None}, True),
        ({"problem": EXPLICIT, "budget": 2}, True),
        ({"problem": {k: v for k, v in EXPLICIT.items() if k != "objective"}, "budget": 2}, True),
        ({"problem": {**PROBLEM, "metadata": {"anything": [1, "x"]}}, "budget": 2}, True),
        ({"problem": PROBLEM}, False),
        ({"problem": PROBLEM, "budget": None, "budgets": None}, False),
        ({"problem": PROBLEM, "budget": 2, "budgets": "1:3:1"}, False),
        ({"problem": PROBLEM, "budgets": "1:3"}, False),
        ({"problem": PROBLEM, "budgets": "one,two"}, False),
        ({"problem": {}, "budget": 2}, False),
        ({"problem": {**PROBLEM, "tasks": []}, "budget": 2}, False),
        ({"problem": {**PROBLEM, "tasks": ["a", "a", "c", "d"]}, "budget": 2}, False),
        ({"problem": {k: v for k, v in PROBLEM.items() if k != "affinity"}, "budget": 2}, False),
        ({"problem": {**PROBLEM, "singletons": "sometimes"}, "budget": 2}, False),
        ({"problem": {**PROBLEM, "network_cost": 0}, "budget": 2}, False),
        ({"problem": {**PROBLEM, "half_singletons": "yes"}, "budget": 2}, False),
        ({"problem": {**PROBLEM, "affinity": {"onto_row_from_column": [[2e6]]}}, "budget": 2}, False),
        ({"problem": {**EXPLICIT, "objective": "max_affinity"}, "budget": 2}, False),
        ({"problem": {**EXPLICIT, "networks": [{"loss": {"a": 1.0}}]}, "budget": 2}, False),
        ({"problem": {**EXPLICIT, "networks": [{"tasks": ["a"], "size": "tiny"}]}, "budget": 2}, False),
    ],
)
def test_post_groupings_accepts_exactly_what_its_schema_states(api_client, body: dict[str, Any], valid: bool):
    assert SOLVE.is_valid(body) is valid
    response = api_client.post("/groupings", json=body)
    if valid:
        assert response.status_code == 200, response.text
    else:
        assert_problem(response, 422)


@pytest.mark.parametrize(
    ("query", "valid"),
    [
        ({"job_id": "j", "budget": "2"}, True),
        ({"job_id": "j", "budgets": "1:5:0.5"}, True),
        ({"job_id": "j"}, False),
        ({"job_id": "j", "budget": "2", "budgets": "1:5:0.5"}, False),
        ({"budget": "2"}, False),
        ({"job_id": "j", "budgets": "1:5"}, False),
    ],
)
def test_get_groupings_states_exactly_one_budget_form(api_client, query: dict[str, str], valid: bool):
    typed = {k: float(v) if k == "budget" else v for k, v in query.items()}
    assert QUERY.is_valid(typed) is valid
    response = api_client.get("/groupings", params=query)
    if valid:  # no such job: the parameters passed
        assert_problem(response, 404, "job_id")
    else:
        assert_problem(response, 422)


def test_the_get_groupings_query_is_one_form_exploded_object(api_client):
    operation = api_client.get("/openapi.json").json()["paths"]["/groupings"]["get"]
    [parameter] = operation["parameters"]
    assert parameter["in"] == "query" and parameter["style"] == "form" and parameter["explode"] is True
    schema = parameter["schema"]
    # exactly one of job_id and study_id, and exactly one of budget and budgets
    assert not schema.get("required")
    assert schema["anyOf"] == [{"required": ["job_id"]}, {"required": ["study_id"]}]
    assert schema["not"] == {"required": ["job_id", "study_id"]}
    assert schema["oneOf"] == [{"required": ["budget"]}, {"required": ["budgets"]}]
    assert set(schema["properties"]) == {"job_id", "study_id", "budget", "budgets", "method", "solver",
                                         "singletons"}


JOB_BODY = {"dataset": "digits-attributes", "training": {"epochs": 1}}


@pytest.fixture
def server_client(server_settings: Settings) -> Iterator[Any]:
    """The server-mode app (PostgreSQL, jobs published to this session's Redis queue) with a key."""
    yield from _client(server_settings)


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        (JOB_BODY, True),
        ({**JOB_BODY, "tasks": [{"name": "digit", "type": "multiclass", "loss": "cross_entropy"}]}, True),
        ({**JOB_BODY, "training": {"optimizer": "momentum", "momentum": 0.5}}, True),
        ({**JOB_BODY, "training": {"momentum": 0}}, True),
        ({**JOB_BODY, "methods": ["warm_start"], "warm_start": {"val_draws": 0}}, True),
        ({**JOB_BODY, "tasks": []}, False),
        ({**JOB_BODY, "tasks": [{"name": "even", "type": "binary", "loss": "mse"}]}, False),
        ({**JOB_BODY, "tasks": [{"name": "digit", "type": "regression", "loss": "bce"}]}, False),
        ({**JOB_BODY, "training": {"momentum": 0.5}}, False),
        ({**JOB_BODY, "training": {"optimizer": "adam", "momentum": 0.5}}, False),
        ({**JOB_BODY, "warm_start": {"val_draws": 0}}, False),
        ({**JOB_BODY, "methods": ["tag", "tag"]}, False),
        ({**JOB_BODY, "features": ["x", "x"]}, False),
        ({**JOB_BODY, "split": {"fractions": [1.0, 0.0, 0.0]}}, False),
    ],
)
def test_post_jobs_refuses_exactly_what_its_schema_states(server_client, body: dict[str, Any], valid: bool):
    assert JOB.is_valid(body) is valid
    response = server_client.post("/jobs", json=body)  # queued in this session's queue, never run
    if valid:
        assert response.status_code == 202, response.text
    else:
        assert_problem(response, 422)


@pytest.mark.parametrize("path", ["/jobs/a%25b", "/jobs/a b", "/datasets/x.y", "/jobs/a%00b/cancel"])
def test_ids_in_a_path_are_letters_digits_dashes_and_underscores(api_client, path: str):
    field = "job_id" if path.startswith("/jobs") else "dataset_id"
    method = "post" if path.endswith("/cancel") else "get"
    assert_problem(getattr(api_client, method)(path), 422, field)


def test_every_stated_pattern_compiles_where_schema_tools_run():
    for pattern in (TEXT_PATTERN, BUDGETS_PATTERN, ID_PATTERN):
        jsonschema_rs.validator_for({"type": "string", "pattern": pattern})  # Rust regex: no surrogates
    text = jsonschema_rs.validator_for({"type": "string", "pattern": TEXT_PATTERN})
    assert text.is_valid("zürich ✓") and not text.is_valid("a\x00b") and not text.is_valid("tab\there")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/jobs/0", "DELETE, GET"),
        ("PUT", "/jobs", "GET, POST"),
        ("OPTIONS", "/datasets/0", "DELETE, GET"),
        ("PATCH", "/groupings", "GET, POST"),
        ("DELETE", "/jobs/0/cancel", "POST"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_a_405_allows_every_method_of_the_path(api_client, method: str, path: str, allowed: str):
    response = api_client.request(method, path)
    assert_problem(response, 405)
    assert response.headers["allow"] == allowed
