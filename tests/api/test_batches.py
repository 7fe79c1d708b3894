"""The batch API through HTTP: posting, progress, results, idempotency, tenancy."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient

from tests.conftest import KeyFactory, auth, complaints_payload, wait_for_batch


def all_results(client: TestClient, batch_id: str, key: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    after = 0
    while True:
        page = client.get(
            f"/v1/batches/{batch_id}/results",
            params={"after": after, "limit": 1000},
            headers=auth(key),
        ).json()
        items.extend(page["items"])
        if page["next_after"] is None:
            return items
        after = page["next_after"]


@pytest.mark.slow
def test_ten_thousand_complaint_json_batch_is_accepted_and_fully_analysed(
    client: TestClient, make_key: KeyFactory
) -> None:
    key = make_key()
    response = client.post("/v1/batches", json=complaints_payload(10_000), headers=auth(key))

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["accepted"] == 10_000 and accepted["rejected"] == 0
    assert response.headers["Location"] == f"/v1/batches/{accepted['id']}"

    status = wait_for_batch(client, accepted["id"], key)
    assert status["progress"] == {"total": 10_000, "done": 10_000, "failed": 0, "pending": 0}
    results = all_results(client, accepted["id"], key)
    assert [r["row"] for r in results] == list(range(1, 10_001))
    assert all(r["status"] == "analysed" and r["sentiment"] for r in results)
    assert {r["language"] for r in results} >= {"ary", "fr", "en", "ar", "zgh"}


def test_analysis_fields_and_redaction(client: TestClient, make_key: KeyFactory) -> None:
    key = make_key()
    batch = client.post("/v1/batches", json=complaints_payload(8), headers=auth(key)).json()
    wait_for_batch(client, batch["id"], key)
    results = {r["external_id"]: r for r in all_results(client, batch["id"], key)}

    pii = results["c-7"]
    assert "06 12 34 56 78" not in pii["text"] and "karim.benali" not in pii["text"]
    assert "AB123456" not in pii["text"]
    assert set(pii["redactions"]) >= {"phone", "email", "cin"}
    assert results["c-5"]["language"] == "zgh" and results["c-5"]["script"] == "Tfng"
    assert results["c-2"]["sentiment"]["label"] in {"negative", "neutral", "positive"}
    scores = results["c-1"]["sentiment"]["scores"]
    assert set(scores) == {"negative", "neutral", "positive"}
    assert abs(sum(scores.values()) - 1) < 1e-3
    assert all({"id", "score"} <= set(t) for r in results.values() for t in r["topics"])


def test_csv_batch_with_bad_rows_keeps_every_valid_row(
    client: TestClient, make_key: KeyFactory
) -> None:
    key = make_key()
    too_long = "x" * 10_001
    body = (
        "id,text,channel,colour\n"
        "r1,Le guichet est fermé depuis une semaine,web,red\n"
        "r2,,web,blue\n"
        f"r3,{too_long},web,green\n"
        'r4,"unterminated quote,web,red\n'
    )
    body += "".join(f"ok{i},Retard de traitement du dossier numéro {i},app,x\n" for i in range(5))
    response = client.post(
        "/v1/batches", content=body.encode(), headers={**auth(key), "Content-Type": "text/csv"}
    )

    assert response.status_code == 202, response.text
    accepted = response.json()
    errors = accepted["errors"]
    assert any(e["row"] is None and e["field"] == "colour" for e in errors)
    assert any(e["row"] == 2 and e["field"] == "text" for e in errors)
    assert any(e["row"] == 3 and e["field"] == "text" and "10000" in e["message"] for e in errors)
    assert accepted["accepted"] >= 6 and accepted["rejected"] >= 2
    status = wait_for_batch(client, accepted["id"], key)
    assert status["progress"]["done"] == accepted["accepted"]
    ids = {r["external_id"] for r in all_results(client, accepted["id"], key)}
    assert {"r1", "ok0", "ok1", "ok2", "ok3", "ok4"} <= ids
    assert "r2" not in ids and "r3" not in ids


def test_windows_1256_csv_is_detected(client: TestClient, make_key: KeyFactory) -> None:
    key = make_key()
    body = "id,text\na1,الموظف لم يجب على طلبي منذ شهر\na2,انقطاع الكهرباء في الحي\n"
    response = client.post(
        "/v1/batches",
        content=body.encode("cp1256"),
        headers={**auth(key), "Content-Type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    wait_for_batch(client, response.json()["id"], key)
    results = all_results(client, response.json()["id"], key)
    assert results[0]["text"].startswith("الموظف")


def test_jsonl_and_multipart_uploads(client: TestClient, make_key: KeyFactory) -> None:
    key = make_key()
    lines = "\n".join(json.dumps(c) for c in complaints_payload(3)["complaints"])
    response = client.post(
        "/v1/batches",
        content=lines.encode(),
        headers={**auth(key), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    csv_file = "id,text\nm1,Le site de la CNSS ne marche pas\n"
    response = client.post(
        "/v1/batches",
        files={"file": ("complaints.csv", csv_file.encode(), "text/csv")},
        headers=auth(key),
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1


def test_results_as_csv(client: TestClient, make_key: KeyFactory) -> None:
    key = make_key()
    batch = client.post("/v1/batches", json=complaints_payload(5), headers=auth(key)).json()
    wait_for_batch(client, batch["id"], key)
    response = client.get(
        f"/v1/batches/{batch['id']}/results", headers={**auth(key), "Accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["external_id"] for r in rows] == [f"c-{i}" for i in range(5)]
    assert all(r["sentiment"] in {"negative", "neutral", "positive"} for r in rows)


def test_reposting_external_ids_does_not_duplicate(
    client: TestClient, make_key: KeyFactory
) -> None:
    key = make_key()
    first = client.post("/v1/batches", json=complaints_payload(20), headers=auth(key)).json()
    wait_for_batch(client, first["id"], key)
    second = client.post(
        "/v1/batches", json=complaints_payload(25), headers=auth(key)
    ).json()  # 20 old ids + 5 new
    assert second["duplicates"] == 20 and second["accepted"] == 25
    wait_for_batch(client, second["id"], key)
    first_ids = {r["external_id"]: r["complaint_id"] for r in all_results(client, first["id"], key)}
    second_rows = all_results(client, second["id"], key)
    for row in second_rows:
        if row["external_id"] in first_ids:
            assert row["duplicate"] is True
            assert row["complaint_id"] == first_ids[row["external_id"]]
    assert len({r["complaint_id"] for r in second_rows}) == 25


def test_idempotency_key_returns_the_first_batch(client: TestClient, make_key: KeyFactory) -> None:
    key = make_key()
    headers = {**auth(key), "Idempotency-Key": "upload-2026-11-26-001"}
    first = client.post("/v1/batches", json=complaints_payload(3, prefix="i"), headers=headers)
    retry = client.post("/v1/batches", json=complaints_payload(3, prefix="i"), headers=headers)
    assert first.status_code == retry.status_code == 202
    assert retry.json()["id"] == first.json()["id"]
    assert retry.json()["replayed"] is True and first.json()["replayed"] is False


def test_tenants_never_see_each_other(client: TestClient, make_key: KeyFactory) -> None:
    owner, stranger = make_key(tenant="health"), make_key(tenant="justice")
    batch = client.post("/v1/batches", json=complaints_payload(2), headers=auth(owner)).json()
    wait_for_batch(client, batch["id"], owner)
    complaint_id = all_results(client, batch["id"], owner)[0]["complaint_id"]

    for path in (
        f"/v1/batches/{batch['id']}",
        f"/v1/batches/{batch['id']}/results",
        f"/v1/complaints/{complaint_id}",
    ):
        assert client.get(path, headers=auth(stranger)).status_code == 404, path
        assert client.get(path, headers=auth(owner)).status_code == 200, path
    # The same external ids are independent per tenant.
    other = client.post("/v1/batches", json=complaints_payload(2), headers=auth(stranger)).json()
    assert other["duplicates"] == 0


def test_analyst_reads_across_tenants_and_corrects_labels(
    client: TestClient, make_key: KeyFactory
) -> None:
    owner, analyst = make_key(tenant="health"), make_key("analyst")
    batch = client.post("/v1/batches", json=complaints_payload(2), headers=auth(owner)).json()
    wait_for_batch(client, batch["id"], owner)
    complaint_id = all_results(client, batch["id"], owner)[0]["complaint_id"]

    assert client.get(f"/v1/complaints/{complaint_id}", headers=auth(analyst)).status_code == 200
    patch = {"sentiment": "neutral", "topics": ["delays"]}
    denied = client.patch(f"/v1/complaints/{complaint_id}/labels", json=patch, headers=auth(owner))
    assert denied.status_code == 403
    done = client.patch(f"/v1/complaints/{complaint_id}/labels", json=patch, headers=auth(analyst))
    assert done.status_code == 200, done.text
    bad = client.patch(
        f"/v1/complaints/{complaint_id}/labels", json={"topics": ["weather"]}, headers=auth(analyst)
    )
    assert bad.status_code == 422 and "weather" in bad.text
    read = client.get(f"/v1/complaints/{complaint_id}", headers=auth(owner)).json()
    assert read["corrected_sentiment"] == "neutral" and read["corrected_topics"] == ["delays"]
