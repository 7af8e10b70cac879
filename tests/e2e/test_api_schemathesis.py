"""Property-based requests from the OpenAPI spec (schemathesis): never a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from luftnett.settings import DEMO_API_KEY


@pytest.fixture
def api_schema(api_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{api_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: schemathesis.Case) -> None:
    headers = {"X-API-Key": DEMO_API_KEY} if case.method.upper() == "POST" else None
    response = case.call(headers=headers, timeout=120)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}: "
        f"{response.text[:300]}"
    )
