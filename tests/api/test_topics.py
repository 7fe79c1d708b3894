"""Tenant-defined topics: created from a few examples, scored on new complaints, no retraining."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.core.config import Settings
from service.core.db import make_engine, make_session_factory, session_scope
from service.topics.models import CustomTopic
from tests.conftest import KeyFactory, auth, wait_for_batch

SCHOOL_MEALS = {
    "id": "school_meals",
    "name": "School canteens",
    "description": "Complaints about food served in school canteens",
    "examples": [
        "La cantine de l'école sert des repas froids et insuffisants aux enfants",
        "The school canteen food is cold and the portions are too small for the kids",
        "الوجبات في مطعم المدرسة باردة وغير كافية للتلاميذ",
        "الماكلة ديال المطعم المدرسي باردة والدراري ما كيشبعوش",
        "lmakla f cantine dyal lmadrasa bard w lwlad ma kaychab3och",
    ],
}
MATCHING = [
    "Les repas de la cantine scolaire sont immangeables, mon fils revient affamé",
    "My daughter says the school lunch was spoiled again this week",
]
UNRELATED = [
    "Le passeport n'est toujours pas prêt après trois mois d'attente",
    "انقطاع الكهرباء في الحي منذ يومين",
]


def test_custom_topic_is_scored_on_new_complaints_of_its_tenant_only(
    client: TestClient, make_key: KeyFactory
) -> None:
    owner, other = make_key(tenant="education"), make_key(tenant="interior")
    created = client.post("/v1/topics", json=SCHOOL_MEALS, headers=auth(owner))
    assert created.status_code == 201, created.text
    assert created.json()["source"] == "custom" and created.json()["examples"] == 5

    listed = client.get("/v1/topics", headers=auth(owner)).json()["topics"]
    assert {"delays", "school_meals"} <= {t["id"] for t in listed}
    assert "school_meals" not in {
        t["id"] for t in client.get("/v1/topics", headers=auth(other)).json()["topics"]
    }

    texts = [{"id": f"m{i}", "text": t} for i, t in enumerate(MATCHING + UNRELATED)]
    for key in (owner, other):
        batch = client.post("/v1/batches", json={"complaints": texts}, headers=auth(key)).json()
        wait_for_batch(client, batch["id"], key)
        rows = client.get(f"/v1/batches/{batch['id']}/results", headers=auth(key)).json()["items"]
        tagged = {
            r["external_id"] for r in rows if "school_meals" in {t["id"] for t in r["topics"]}
        }
        if key == owner:
            assert tagged == {"m0", "m1"}
        else:
            assert tagged == set()


def test_custom_topic_errors(client: TestClient, make_key: KeyFactory) -> None:
    key = make_key(tenant="education")
    too_few = {**SCHOOL_MEALS, "examples": SCHOOL_MEALS["examples"][:2]}
    assert client.post("/v1/topics", json=too_few, headers=auth(key)).status_code == 422
    bad_id = {**SCHOOL_MEALS, "id": "School Meals!"}
    assert client.post("/v1/topics", json=bad_id, headers=auth(key)).status_code == 422
    taxonomy = {**SCHOOL_MEALS, "id": "delays"}
    response = client.post("/v1/topics", json=taxonomy, headers=auth(key))
    assert response.status_code == 409 and "taxonomy" in response.json()["detail"]
    assert client.post("/v1/topics", json=SCHOOL_MEALS, headers=auth(key)).status_code == 201
    again = client.post("/v1/topics", json=SCHOOL_MEALS, headers=auth(key))
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    dashboard = make_key("dashboard", tenant="education")
    assert client.post("/v1/topics", json=SCHOOL_MEALS, headers=auth(dashboard)).status_code == 403
    assert client.delete("/v1/topics/school_meals", headers=auth(key)).status_code == 204
    assert client.delete("/v1/topics/school_meals", headers=auth(key)).status_code == 404


def test_custom_topic_examples_are_stored_redacted(
    client: TestClient, make_key: KeyFactory, settings: Settings
) -> None:
    """Analysts paste real complaints as examples: names' numbers must not be kept."""
    key = make_key(tenant="education")
    planted = "Appelez le 06 12 34 56 78 ou karim.benali@example.ma"
    body = {**SCHOOL_MEALS, "examples": [*SCHOOL_MEALS["examples"], f"Cantine froide. {planted}"]}
    assert client.post("/v1/topics", json=body, headers=auth(key)).status_code == 201

    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            stored = session.scalars(select(CustomTopic.examples)).one()
    finally:
        engine.dispose()
    joined = " ".join(stored)
    assert "Cantine froide." in joined
    assert "06 12 34 56 78" not in joined and "karim.benali@example.ma" not in joined


def test_a_topic_made_with_another_encoder_is_refit_on_the_served_one(
    client: TestClient, make_key: KeyFactory, settings: Settings
) -> None:
    """Promoting heads on a fine-tuned encoder must not silently drop tenants' topics."""
    key = make_key(tenant="education")
    assert client.post("/v1/topics", json=SCHOOL_MEALS, headers=auth(key)).status_code == 201
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    try:
        with session_scope(sessions) as session:
            topic = session.scalars(select(CustomTopic)).one()
            served = topic.encoder_version
            # as if made before the encoder changed: another space, a meaningless centroid
            topic.encoder_version = "e5-small-previous-onnx_int8"
            topic.centroid = bytes(len(topic.centroid))
        texts = [{"id": f"m{i}", "text": t} for i, t in enumerate(MATCHING + UNRELATED)]
        batch = client.post("/v1/batches", json={"complaints": texts}, headers=auth(key)).json()
        wait_for_batch(client, batch["id"], key)
        rows = client.get(f"/v1/batches/{batch['id']}/results", headers=auth(key)).json()["items"]
        tagged = {
            r["external_id"] for r in rows if "school_meals" in {t["id"] for t in r["topics"]}
        }
        assert tagged == {"m0", "m1"}
        with session_scope(sessions) as session:
            assert session.scalars(select(CustomTopic.encoder_version)).one() == served
    finally:
        engine.dispose()
