"""Discovery over stored embeddings: themes with stable ids across runs, tenant-scoped."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from models.seed import load_seed_rows
from tests.conftest import KeyFactory, auth, wait_for_batch


@pytest.mark.slow
def test_discovery_reuses_stored_embeddings_and_keeps_theme_ids(
    client: TestClient, make_key: KeyFactory
) -> None:
    owner, stranger = make_key(tenant="interior"), make_key(tenant="health")
    rows = load_seed_rows("test")[:300]
    complaints = [{"id": r["id"], "text": r["text"], "service": r["service"]} for r in rows]
    batch = client.post("/v1/batches", json={"complaints": complaints}, headers=auth(owner))
    wait_for_batch(client, batch.json()["id"], owner)

    assert client.get("/v1/themes", headers=auth(owner)).status_code == 404
    first = client.post("/v1/themes/discover", headers=auth(owner))
    assert first.status_code == 200, first.text
    run = first.json()
    assert run["n_documents"] == len(rows)
    assert run["themes"], "discovery found no theme in 300 seed complaints"
    theme = run["themes"][0]
    assert {"theme_id", "keywords", "size", "suggested_topic", "representative_texts"} <= set(theme)
    assert all("centroid" not in t for t in run["themes"])

    second = client.post("/v1/themes/discover", headers=auth(owner)).json()
    first_ids = {t["theme_id"] for t in run["themes"]}
    second_ids = {t["theme_id"] for t in second["themes"]}
    assert len(first_ids & second_ids) >= 0.8 * len(first_ids), (
        "refit on the same data renamed themes"
    )
    assert not any(t["is_new"] for t in second["themes"] if t["theme_id"] in first_ids)

    assert client.get("/v1/themes", headers=auth(owner)).json()["run_id"] == second["run_id"]
    assert client.get("/v1/themes", headers=auth(stranger)).status_code == 404
    too_few = client.post("/v1/themes/discover", headers=auth(stranger))
    assert too_few.status_code == 422 and "at least 20" in too_few.json()["detail"]
