"""Property-based fuzzing of every operation against the app's own OpenAPI document.

Bounded (20 examples per operation and mode; SAWT_FUZZ_EXAMPLES=100 for a deeper run) and
marked slow. Checks: no 5xx, and answers whose status code is documented and whose body,
content type and headers conform to what is documented for that status code.
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
    status_code_conformance,
)

MAX_EXAMPLES = int(os.environ.get("SAWT_FUZZ_EXAMPLES", "20"))  # per operation and mode
# Refused callers get a short run each: what is checked there is the 401/403 answer's
# documentation (status, body, WWW-Authenticate), not the operation's parameters.
REFUSED_EXAMPLES = 5
# Loading the models again per example is slow and exercised by test_analyze_and_ops.
SKIPPED = {"POST /v1/models/reload"}
# 401/403/429 and every error body are declared centrally (`service.api.openapi`), so each
# answer's status code must be documented and its body must match that code's schema.
# Not run: positive_data_acceptance (business rules beyond the schema, e.g. "an admin posting a
# batch must name the tenant", rightly answer 422 to schema-valid input).
# negative_data_rejection is not run either: a query string cannot tell a one-item array from a
# string, so `?region=x` "violates" `region: array | null` yet is rightly accepted.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
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
    make_key = KeyFactory(config)
    return {"app": app, "key": make_key("admin"), "dashboard": make_key("dashboard")}


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str], max_examples: int) -> int:
    """Runs one operation in one mode; returns how many requests it sent."""
    sent = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(headers=headers, checks=CHECKS)

    fuzz()
    return sent


@pytest.mark.slow
def test_api_conforms_to_its_schema(fuzz_env: dict[str, Any]) -> None:
    """One hypothesis run per operation and mode, so a failure names its operation and the
    rest still run; schema-valid (positive) and schema-invalid (negative) inputs both.

    (schemathesis' own pytest plugin does not load under pytest 9.)
    """
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_env["app"])
    # X-API-Key is a documented header, so the fuzzer would send junk in it: pin it to a key.
    runs = [
        ("admin", {"X-API-Key": fuzz_env["key"]}, list(GenerationMode), MAX_EXAMPLES),
        (
            "dashboard",
            {"X-API-Key": fuzz_env["dashboard"]},
            [GenerationMode.POSITIVE],
            REFUSED_EXAMPLES,
        ),
        (
            "bad key",
            {"X-API-Key": "sawt_000000000000_nope"},
            [GenerationMode.POSITIVE],
            REFUSED_EXAMPLES,
        ),
    ]
    failures: dict[str, str] = {}
    sent: dict[str, int] = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the app's OpenAPI has an invalid operation: {result}"
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label in SKIPPED:
            continue
        for caller, headers, modes, examples in runs:
            for mode in modes:
                run = f"{caller}, {mode.value}"
                try:
                    sent[run] = sent.get(run, 0) + _fuzz(operation, mode, headers, examples)
                except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                    continue
                except (Exception, BaseExceptionGroup) as exc:  # collect: report every operation
                    failures[f"{label} ({run})"] = f"{type(exc).__name__}: {str(exc)[:2000]}"
    print(f"fuzzed requests: {sent}; failures: {len(failures)}")
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
