"""schemathesis against the OpenAPI spec, every operation, in-process (ASGI) in server mode
(PostgreSQL, Redis, an API key), on positive and negative data, with every check schemathesis has
for OpenAPI that judges a request and its response (its CLI's ``--checks all``; the stateful ones,
``use_after_free`` and ``ensure_resource_availability``, find no links to follow here): no 5xx;
status codes, content types, headers and bodies as documented; schema-valid data accepted and
schema-violating data rejected; missing required headers, unsupported methods and ``Allow`` headers
answered as HTTP says; auth not ignored.

Two settings of schemathesis are this API's:

* the API key is sent by the test itself, so schemathesis generates no ``Authorization`` header (it
  would replace it with a negated one the test then overwrites); ``ignored_auth`` still checks that
  every operation refuses a request without it;
* a schema-valid request may be refused with 422 (besides schemathesis' accepted 2xx, 401, 403, 404,
  409, 429) only for a rule no schema can state: :data:`SERVER_RULES` lists them per operation —
  a dataset or file the server has to look at, a problem's cross-member rules, the limits of this
  server's settings. Any other 422 to schema-valid data fails (:func:`refused_only_for_server_rules`):
  the schema must state every rule the request's own shape obeys.

Bounded: ``TASKGROUPER_FUZZ_EXAMPLES`` cases per operation (default 25, what CI runs; the release
check runs 200); the cases per operation and the checks are printed at the end.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import schemathesis
from conftest import SESSION_TAG, make_key
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, is_check_class, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES
from schemathesis.core.failures import Failure

from service.app import create_app

pytestmark = [pytest.mark.services, pytest.mark.slow]

#: cases per operation (hypothesis examples)
MAX_EXAMPLES = int(os.environ.get("TASKGROUPER_FUZZ_EXAMPLES", "25"))

#: per operation, the fields a schema-valid request may be refused for (422), each with the words its
#: reason must contain ("" matches any reason): rules that need the server's data or settings, or
#: relate members of a document in ways JSON Schema cannot express
SERVER_RULES: dict[str, list[tuple[str, str]]] = {
    "POST /jobs": [
        ("dataset", ""),  # neither a built-in dataset nor an uploaded one (a reference)
        ("tasks", "max_tasks"),  # this server's limit
        ("tasks", "not a task of"),  # a built-in dataset's tasks
        ("warm_start", ""),  # the networks a warm_start job would train, over the tasks it resolves
        ("tasks", "listed twice"),  # task names unique across the items (JSON Schema: whole items only)
        ("split.fractions", "sum to 1"),  # arithmetic across the items
        ("model", "parameters"),  # the network's size: layers x units^2 x width
    ],
    "POST /affinity-runs": [
        ("matrices", "so the matrix is"),  # n x n for the n tasks (a length relating two members)
        ("trajectories", "so the matrix is"),  # the same, for every epoch of a trajectory
        ("trajectories", "without a matrix"),  # a trajectory's method is one of the matrices' keys
        ("tasks", "max_tasks"),  # this server's limit
        ("trajectories", "max epochs"),  # a trajectory's epochs, at most MAX_RUN_EPOCHS
        ("metadata", "levels deep"),  # free JSON, nested at most MAX_METADATA_DEPTH levels
    ],
    "POST /datasets": [
        ("file", ""),  # the file's content: format, columns, values
        ("location", ""),  # a server path under a configured dataset root
    ],
    "GET /groupings": [
        ("budgets", "max_budgets"),  # this server's limit
        ("budgets", "STEP"),  # a range's step must be > 0 ...
        ("budgets", "STOP"),  # ... and its stop at least its start
        ("budgets", "budgets requested"),  # the library's cap on a curve's length
        ("trials", "no measured network"),  # a study whose results do not serve every task yet
    ],
    "POST /studies": [
        ("tasks", "accepts at most"),  # the strategy's task limit (a length depending on another member)
        ("tasks", "listed twice"),  # task names unique
        ("esa_epochs", "applies only"),  # only with the esa strategy
        ("budgets", "at most"),  # this server's max_budgets
        ("dataset", ""),  # a builtin study's built-in dataset; none for an external one
        ("dataset_options", ""),  # builtin only
        ("model", ""),  # builtin only; the network's size (layers x units^2 x width)
        ("training", ""),  # builtin only
    ],
    "POST /trials/{trial_id}:tell": [
        ("val", "must hold exactly"),  # the tasks the trial's network serves (the server's data)
        ("test", "must hold exactly"),
    ],
    "GET /studies/{study_id}/table": [("trials", "no measured network")],  # the study's results so far
    "POST /groupings": [
        ("problem", ""),  # cross-member rules of a problem (see its schema's description)
        ("budget", "minimum feasible"),  # a budget below the cheapest covering selection
        ("budgets", "max_budgets"),
        ("budgets", "STEP"),
        ("budgets", "STOP"),
        ("budgets", "budgets requested"),
    ],
}


def refused_only_for_server_rules(ctx: Any, response: Any, case: Any) -> bool | None:
    """A positive case answered 422 names a field and reason of :data:`SERVER_RULES` for its operation."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    body = response.json()
    field, reason = str(body.get("field") or ""), str(body.get("reason") or "")
    label = f"{case.method.upper()} {case.path}"
    for allowed, words in SERVER_RULES.get(label, []):
        if (field == allowed or field.startswith((f"{allowed}.", f"{allowed}["))) and words in reason:
            return None
    raise Failure(
        operation=label,
        title="Schema-valid request refused for a rule the schema does not state",
        message=f"{field}: {reason}\nState the rule in the schema, or list it in SERVER_RULES if no "
        "schema can state it",
    )


load_all_checks()
#: every registered check that judges a request and its response (class-based checks, which need a
#: whole run, are left to the CLI), and this suite's own
CHECKS_ALL = [
    *(check for check in CHECKS.get_all() if not is_check_class(check)),
    refused_only_for_server_rules,
]
GENERATED: dict[str, int] = {}


def fuzz_config() -> SchemathesisConfig:
    """schemathesis' settings for this API (the module docstring says why)."""
    return SchemathesisConfig.from_dict(
        {
            "generation": {"with-security-parameters": False},
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "422"]
                }
            },
        }
    )


@pytest.fixture(scope="module")
def fuzz_target(pg_url, redis_url, tmp_path_factory):
    from service.settings import Settings

    tag = uuid.uuid4().hex[:8]
    fuzz_settings = Settings(
        home=tmp_path_factory.mktemp("fuzz-home"),
        database_url=pg_url,
        broker_url=redis_url,
        training_queue=f"fuzz-training-{SESSION_TAG}-{tag}",  # nobody consumes these: no job runs
        solve_queue=f"fuzz-solve-{SESSION_TAG}-{tag}",
        rate_limit_requests=0,
        max_tasks=8,
        solve_time_limit=2.0,
        default_project=f"fuzz-{tag}",
    )
    app = create_app(fuzz_settings)
    key = make_key(fuzz_settings, fuzz_settings.default_project)
    api = schemathesis.openapi.from_asgi("/openapi.json", app, config=fuzz_config())
    yield api, {"Authorization": f"Bearer {key}"}
    checks = ", ".join(check.__name__ for check in CHECKS_ALL)
    print(f"\nschemathesis generated {sum(GENERATED.values())} cases: {GENERATED}\nchecks: {checks}")


@pytest.fixture(scope="module")
def api_schema(fuzz_target):
    return fuzz_target[0]


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_api_conforms_to_its_schema(case, fuzz_target):
    _, headers = fuzz_target
    label = f"{case.method} {case.path}"
    GENERATED[label] = GENERATED.get(label, 0) + 1
    case.call_and_validate(headers=headers, checks=CHECKS_ALL)
