"""Hardening: per-key rate limits, audit of reads, retention purge, security headers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.cli import app as cli_app
from service.core.config import Settings, get_settings
from service.core.ratelimit import TokenBucketLimiter
from service.main import create_app
from tests.conftest import KeyFactory, auth, complaints_payload, migrate, wait_for_batch


@pytest.fixture
def tight_client(
    database_url: str, make_settings: Callable[..., Settings]
) -> Iterator[tuple[TestClient, KeyFactory]]:
    settings = make_settings(database_url, rate_limit_per_minute=6, rate_limit_burst=3)
    migrate(settings.database_url)
    with TestClient(create_app(settings)) as client:
        yield client, KeyFactory(settings)


def test_rate_limit_answers_429_with_retry_after_per_key(
    tight_client: tuple[TestClient, KeyFactory],
) -> None:
    client, make_key = tight_client
    greedy, other = make_key("ministry"), make_key("ministry", tenant="ministry-b")

    codes = [client.get("/v1/complaints/999", headers=auth(greedy)).status_code for _ in range(3)]
    limited = client.get("/v1/complaints/999", headers=auth(greedy))

    assert codes == [404, 404, 404]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 10  # 6/min: one token every 10 s
    assert "rate limit" in limited.json()["detail"]
    assert client.get("/v1/complaints/999", headers=auth(other)).status_code == 404


def test_token_bucket_refills_over_time() -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(per_minute=60, burst=2, clock=lambda: now[0])

    assert [limiter.acquire(1), limiter.acquire(1)] == [0.0, 0.0]
    assert limiter.acquire(1) == pytest.approx(1.0)
    now[0] = 1.0
    assert limiter.acquire(1) == 0.0
    assert limiter.acquire(2) == 0.0


def test_analyst_reads_are_audited_and_ministry_reads_are_not(
    client: TestClient, make_key: KeyFactory
) -> None:
    ministry, analyst, admin = make_key("ministry"), make_key("analyst"), make_key("admin")
    batch = client.post("/v1/batches", json=complaints_payload(4), headers=auth(ministry)).json()
    wait_for_batch(client, batch["id"], ministry)
    results = f"/v1/batches/{batch['id']}/results"
    complaint_id = client.get(results, headers=auth(ministry)).json()["items"][0]["complaint_id"]
    assert client.get(f"/v1/complaints/{complaint_id}", headers=auth(ministry)).status_code == 200
    assert client.get("/v1/audit", headers=auth(admin)).json()["items"] == []

    assert client.get(f"/v1/complaints/{complaint_id}", headers=auth(analyst)).status_code == 200
    assert client.get("/v1/complaints", headers=auth(analyst)).status_code == 200
    assert client.get(results, headers=auth(analyst)).status_code == 200

    events = client.get("/v1/audit", headers=auth(admin)).json()["items"]
    assert [e["action"] for e in events] == ["batch.results", "complaints.list", "complaint.read"]
    read = events[2]
    assert read["role"] == "analyst" and read["resource"] == f"complaint:{complaint_id}"
    assert read["tenant_id"] is not None
    assert client.get("/v1/audit", headers=auth(analyst)).status_code == 403


def test_purge_cli_drops_old_complaints_from_trends_and_reads(
    client: TestClient,
    make_key: KeyFactory,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ministry, other = make_key("ministry"), make_key("ministry", tenant="ministry-b")
    old = complaints_payload(3, prefix="old")
    for row in old["complaints"]:
        row["received_at"] = "2020-03-01T10:00:00+00:00"
    new = complaints_payload(2, prefix="new", start=3)
    batch = client.post(
        "/v1/batches",
        json={"complaints": old["complaints"] + new["complaints"]},
        headers=auth(ministry),
    ).json()
    wait_for_batch(client, batch["id"], ministry)
    ids = {
        r["external_id"]: r["complaint_id"]
        for r in client.get(f"/v1/batches/{batch['id']}/results", headers=auth(ministry)).json()[
            "items"
        ]
    }
    kept = client.post("/v1/batches", json=complaints_payload(2, prefix="b"), headers=auth(other))
    old_b = complaints_payload(1, prefix="b-old", start=5)
    old_b["complaints"][0]["received_at"] = "2020-03-01T10:00:00+00:00"
    other_old = client.post("/v1/batches", json=old_b, headers=auth(other)).json()
    wait_for_batch(client, kept.json()["id"], other)
    wait_for_batch(client, other_old["id"], other)
    params = {"granularity": "month", "from": "2019-01-01"}

    def total(key: str) -> int:
        response = client.get("/v1/trends", params=params, headers=auth(key))
        assert response.status_code == 200, response.text
        return int(response.json()["totals"]["count"])

    assert (total(ministry), total(other)) == (5, 3)

    monkeypatch.setenv("SAWT_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli_app, ["purge", "--older-than", "365", "--tenant", "ministry-a"]
        )
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    assert "complaints=3 analyses=3" in result.stdout
    assert (total(ministry), total(other)) == (2, 3)  # the other tenant's old row is kept
    gone = client.get(f"/v1/complaints/{ids['old-0']}", headers=auth(ministry))
    assert gone.status_code == 404
    assert client.get(f"/v1/complaints/{ids['new-3']}", headers=auth(ministry)).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/v1/complaints/1", "/v1/audit"])
def test_security_headers_on_every_response(client: TestClient, path: str) -> None:
    response = client.get(path)  # healthz answers 200, the others 401: both carry them

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_dashboard_keeps_its_own_csp(client: TestClient) -> None:
    response = client.get("/dashboard/")

    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers.get_list("X-Frame-Options") == ["DENY"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/complaints/99999999999999999999",  # found by tests/api/test_fuzz.py: was a 500
        "/v1/complaints/-9223372036854775809",
        "/v1/batches/x/results?after=99999999999999999999",
        "/v1/audit?before_id=99999999999999999999",
    ],
)
def test_ids_beyond_integer_columns_are_422_not_500(
    client: TestClient, make_key: KeyFactory, path: str
) -> None:
    response = client.get(path, headers=auth(make_key("admin")))

    assert response.status_code == 422, response.text
