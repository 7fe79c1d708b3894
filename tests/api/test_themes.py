"""Discovery over stored embeddings: themes with stable ids across runs, tenant-scoped."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from models.seed import load_seed_rows
from service.complaints.models import Analysis
from service.core.config import Settings
from service.core.db import make_engine, make_session_factory, session_scope
from tests.conftest import KeyFactory, auth, wait_for_batch


@pytest.mark.slow
def test_discovery_reuses_stored_embeddings_and_keeps_theme_ids(
    client: TestClient, make_key: KeyFactory, settings: Settings
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

    # Analyses made before another encoder was promoted live in another embedding space:
    # discovery clusters only the served encoder's embeddings.
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            older = session.scalars(select(Analysis).order_by(Analysis.id).limit(100)).all()
            for analysis in older:
                served, rest = analysis.model_version.split(";", 1)
                assert served.startswith("encoder=")
                analysis.model_version = f"encoder=e5-small-previous-onnx_int8;{rest}"
    finally:
        engine.dispose()
    third = client.post("/v1/themes/discover", headers=auth(owner))
    assert third.status_code == 200, third.text
    assert third.json()["n_documents"] == len(rows) - 100
