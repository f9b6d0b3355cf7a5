"""Fuzzing the running service from its own OpenAPI schema: no request gets a 5xx.

Schemathesis turns the schema that the service serves at ``/openapi.json`` into
Hypothesis strategies. Positive cases follow the schema, negative cases break it (wrong
types, missing or extra fields, out-of-range values). Every response must be below
500, and a 4xx with a body error must name the field and the fix. The fast suite
sends a few dozen cases per operation and mode, the slow one hundreds.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.service.conftest import TOKEN, RunningService, ServedWorkspace, start_service

FAST_EXAMPLES = 25
SLOW_EXAMPLES = 400
FIELD_STATUSES = {400, 413, 415, 422}
OPERATIONS = [
    ("POST", "/score"),
    ("POST", "/score/batch"),
    ("POST", "/invocations"),
    ("GET", "/explanations/{transaction_id}"),
]


@pytest.fixture(scope="module")
def fuzz_service(
    served_workspace: ServedWorkspace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    service = start_service(served_workspace, tmp_path_factory.mktemp("fuzz-service"))
    yield service
    service.stop()


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_service: RunningService) -> schemathesis.BaseSchema:
    document = httpx.get(f"{fuzz_service.url}/openapi.json", timeout=30).json()
    return schemathesis.openapi.from_dict(document)


def fuzz_operation(
    service: RunningService,
    schema: schemathesis.BaseSchema,
    method: str,
    path: str,
    mode: GenerationMode,
    examples: int,
) -> None:
    """Send ``examples`` generated cases of one operation; fail on a 5xx."""
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {TOKEN}"}

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=service.url, headers=headers, timeout=30)
        exchange = (
            f"{case.as_curl_command()}\n-> {response.status_code} {response.text}"
        )
        assert response.status_code < 500, exchange
        if response.status_code in FIELD_STATUSES:
            problems = response.json()["problems"]
            assert problems, exchange
            # An empty JSON key or CSV column is named as sent: the empty string.
            assert all(isinstance(problem["field"], str) for problem in problems)
            assert all(problem["fix"] for problem in problems), exchange

    check()


def assert_still_serving(service: RunningService) -> None:
    ready = httpx.get(f"{service.url}/readyz", timeout=30)
    assert ready.status_code == 200


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=lambda item: str(item))
def test_fuzz_finds_no_server_error(fuzz_service, fuzz_schema, method, path, mode):
    fuzz_operation(fuzz_service, fuzz_schema, method, path, mode, FAST_EXAMPLES)
    assert_still_serving(fuzz_service)


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=lambda item: str(item))
def test_long_fuzz_finds_no_server_error(fuzz_service, fuzz_schema, method, path, mode):
    fuzz_operation(fuzz_service, fuzz_schema, method, path, mode, SLOW_EXAMPLES)
    assert_still_serving(fuzz_service)


def test_fuzz_schema_lists_scoring_routes(fuzz_schema) -> None:
    paths = set(fuzz_schema.raw_schema["paths"])
    assert {"/score", "/score/batch", "/invocations"} <= paths
    assert "/explanations/{transaction_id}" in paths
