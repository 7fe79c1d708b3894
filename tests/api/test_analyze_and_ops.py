"""Synchronous analysis, health, readiness, model endpoints."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import SAMPLE_TEXTS, KeyFactory, auth


def test_analyze_returns_language_sentiment_topics_and_redactions(
    client: TestClient, make_key: KeyFactory
) -> None:
    key = make_key()
    texts = [{"id": f"t{i}", "text": t} for i, t in enumerate(SAMPLE_TEXTS)]
    response = client.post("/v1/analyze", json={"texts": texts}, headers=auth(key))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["id"] for r in results] == [f"t{i}" for i in range(len(SAMPLE_TEXTS))]
    by_id = {r["id"]: r for r in results}
    assert by_id["t1"]["language"] == "fr"
    assert by_id["t2"]["language"] == "en"
    assert by_id["t3"]["language"] == "ary-Latn"
    assert by_id["t5"]["language"] == "zgh"
    assert by_id["t7"]["redactions"] and "[PHONE]" in by_id["t7"]["text"]
    for result in results:  # accuracy is measured by `sawt evaluate`, not asserted here
        scores = result["sentiment"]["scores"]
        assert result["sentiment"]["label"] == max(scores, key=scores.get)
        assert abs(sum(scores.values()) - 1) < 1e-3


def test_plain_string_texts_are_accepted(client: TestClient, make_key: KeyFactory) -> None:
    response = client.post(
        "/v1/analyze",
        json={"texts": ["Service lent et personnel absent"]},
        headers=auth(make_key()),
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["id"] is None


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"models": True, "database": True}


def test_models_endpoint_and_reload_is_admin_only(client: TestClient, make_key: KeyFactory) -> None:
    ministry, admin = make_key(), make_key("admin")
    served = client.get("/v1/models", headers=auth(ministry)).json()
    assert set(served["versions"]) >= {"sentiment", "topics", "langid"}
    assert client.post("/v1/models/reload", headers=auth(ministry)).status_code == 403
    reloaded = client.post("/v1/models/reload", headers=auth(admin))
    assert reloaded.status_code == 200
    assert reloaded.json()["model_version"] == served["model_version"]


def test_openapi_documents_every_route(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/v1/batches",
        "/v1/batches/{batch_id}",
        "/v1/batches/{batch_id}/results",
        "/v1/analyze",
        "/v1/complaints/{complaint_id}",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    post = paths["/v1/batches"]["post"]
    assert {"202", "413", "415", "422"} <= set(post["responses"])
