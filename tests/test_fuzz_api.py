"""schemathesis against the OpenAPI spec, every operation, in-process (ASGI) in server mode
(PostgreSQL, Redis, an API key): no 5xx, and status codes, content types, headers and bodies as
documented. Bounded: ``MAX_EXAMPLES`` cases per operation; the total is printed."""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from conftest import SESSION_TAG, make_key
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app

pytestmark = [pytest.mark.services, pytest.mark.slow]

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
GENERATED: dict[str, int] = {}


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
    yield schemathesis.openapi.from_asgi("/openapi.json", app), {"Authorization": f"Bearer {key}"}
    print(f"\nschemathesis generated {sum(GENERATED.values())} cases: {GENERATED}")


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
    case.call_and_validate(headers=headers, checks=CHECKS)
