"""Property-based fuzzing of every operation against the app's own OpenAPI document.

Bounded (20 examples per operation and mode; SAWT_FUZZ_EXAMPLES=100 for a deeper run) and
marked slow. Checks: no 5xx, and answers that conform to the documented response schemas,
content types and headers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from service.core.config import Settings
from service.main import create_app
from tests.conftest import KeyFactory, migrate

schemathesis = pytest.importorskip("schemathesis", reason="dev extra: pip install schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.result import Ok  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

MAX_EXAMPLES = int(os.environ.get("SAWT_FUZZ_EXAMPLES", "20"))  # per operation and mode
# Loading the models again per example is slow and exercised by test_analyze_and_ops.
SKIPPED = {"POST /v1/models/reload"}
# Not run: status_code_conformance (401/403/429 come from the auth dependency and are not
# declared per operation) and positive_data_acceptance (business rules beyond the schema, e.g.
# "an admin posting a batch must name the tenant", rightly answer 422 to schema-valid input).
# Documentation bugs found by this test, in routers this file does not own: business-rule 422s
# answer `{"detail": "<message>"}` while the schema declares FastAPI's validation-error shape
# (`detail` an array). Their responses are not schema-checked; no 5xx is still checked.
KNOWN_SCHEMA_BUGS = {
    "POST /v1/topics": "422 'an admin must name the tenant' is undocumented (detail is a string)",
    "GET /v1/themes": "422 'name the tenant' is undocumented (detail is a string)",
}
# negative_data_rejection is not run either: a query string cannot tell a one-item array from a
# string, so `?region=x` "violates" `region: array | null` yet is rightly accepted.
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "sawt.db"
    config = Settings(
        environment="test",  # type: ignore[arg-type]
        database_url=f"sqlite:///{path}",
        rate_limit_per_minute=0,  # a fuzzer is a flood by design; limits have their own test
    )
    migrate(config.database_url)
    app = create_app(config)
    return {"app": app, "key": KeyFactory(config)("admin")}


def _fuzz(operation: Any, mode: GenerationMode, checks: list[Any], headers: dict[str, str]) -> int:
    """Runs one operation in one mode; returns how many requests it sent."""
    sent = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(headers=headers, checks=checks)

    fuzz()
    return sent


@pytest.mark.slow
def test_api_conforms_to_its_schema(fuzz_env: dict[str, Any]) -> None:
    """One hypothesis run per operation and mode, so a failure names its operation and the
    rest still run; schema-valid (positive) and schema-invalid (negative) inputs both.

    (schemathesis' own pytest plugin does not load under pytest 9.)
    """
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_env["app"])
    # X-API-Key is a documented header, so the fuzzer would send junk in it: pin it to the key.
    headers = {"X-API-Key": fuzz_env["key"]}
    failures: dict[str, str] = {}
    sent = dict.fromkeys(GenerationMode, 0)
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the app's OpenAPI has an invalid operation: {result}"
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label in SKIPPED:
            continue
        checks = CHECKS
        if label in KNOWN_SCHEMA_BUGS:
            checks = [c for c in CHECKS if c is not response_schema_conformance]
        for mode in GenerationMode:
            try:
                sent[mode] += _fuzz(operation, mode, checks, headers)
            except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                continue
            except (Exception, BaseExceptionGroup) as exc:  # collect: report every operation
                failures[f"{label} ({mode.value})"] = f"{type(exc).__name__}: {str(exc)[:2000]}"
    print(f"fuzzed requests: {', '.join(f'{m.value}={n}' for m, n in sent.items())}")
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
