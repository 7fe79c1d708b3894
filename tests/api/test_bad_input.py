"""Every bad input answers 4xx with a message that names the problem; nothing answers 5xx."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from service.core.config import Settings
from service.main import create_app
from tests.conftest import KeyFactory, auth, complaints_payload, migrate


def test_missing_and_invalid_keys_are_401(client: TestClient) -> None:
    assert client.post("/v1/batches", json=complaints_payload(1)).status_code == 401
    bad = client.post("/v1/batches", json=complaints_payload(1), headers=auth("sawt_x_y"))
    assert bad.status_code == 401 and "invalid" in bad.json()["detail"]


def test_dashboard_role_cannot_post(client: TestClient, make_key: KeyFactory) -> None:
    key = make_key("dashboard")
    response = client.post("/v1/batches", json=complaints_payload(1), headers=auth(key))
    assert response.status_code == 403 and "dashboard" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "needle"),
    [
        (b"<xml/>", "application/xml", 415, "text/csv"),
        (b'{"complaints": [', "application/json", 400, "JSON"),
        (b'{"complaints": []}', "application/json", 422, "no complaints"),
        (b"", "text/csv", 422, "no complaints"),
        (b"id,text\n\xff\xfe\xfa,\x81\x8d\n", "text/csv; charset=utf-8", 400, "encoding"),
    ],
)
def test_unusable_uploads(
    client: TestClient,
    make_key: KeyFactory,
    body: bytes,
    content_type: str,
    status: int,
    needle: str,
) -> None:
    key = make_key()
    response = client.post(
        "/v1/batches", content=body, headers={**auth(key), "Content-Type": content_type}
    )
    assert response.status_code == status, response.text
    assert needle.lower() in response.text.lower()


def test_all_rows_invalid_is_422_with_every_row_named(
    client: TestClient, make_key: KeyFactory
) -> None:
    key = make_key()
    body = {"complaints": [{"id": "a", "text": ""}, {"id": "b"}, {"id": "c", "text": "x" * 10_001}]}
    response = client.post("/v1/batches", json=body, headers=auth(key))
    assert response.status_code == 422
    errors = response.json()["detail"]["errors"]
    assert {(e["row"], e["field"]) for e in errors} == {(1, "text"), (2, "text"), (3, "text")}


def test_body_over_the_size_limit_is_413(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(sqlite_url, max_upload_bytes=2048)
    migrate(sqlite_url)
    key = KeyFactory(settings)()
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/batches", json=complaints_payload(100), headers=auth(key))
    assert response.status_code == 413 and "2048" in response.json()["detail"]


def test_too_many_rows_is_413(sqlite_url: str, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(sqlite_url, max_batch_rows=10)
    key = KeyFactory(settings)()
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/batches", json=complaints_payload(11), headers=auth(key))
    assert response.status_code == 413 and "10" in response.json()["detail"]


def test_unknown_batch_is_404(client: TestClient, make_key: KeyFactory) -> None:
    key = make_key()
    response = client.get("/v1/batches/does-not-exist", headers=auth(key))
    assert response.status_code == 404 and "does-not-exist" in response.json()["detail"]


def test_analyze_limits(client: TestClient, make_key: KeyFactory) -> None:
    key = make_key()
    too_many = client.post("/v1/analyze", json={"texts": ["bonjour"] * 101}, headers=auth(key))
    assert too_many.status_code == 413 and "100" in too_many.json()["detail"]
    empty = client.post("/v1/analyze", json={"texts": [""]}, headers=auth(key))
    assert empty.status_code == 422
