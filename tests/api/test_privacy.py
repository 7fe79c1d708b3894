"""Privacy (issue #6): planted personal data never reaches the database, the logs or an error
response, and a retention purge leaves no copy of the purged complaints anywhere.

The planted rows come from the project's redaction test set (`datasets/redaction/planted.jsonl`:
emails, Moroccan phones in many formats, CIN, RIB/IBAN, card numbers, in ar, ary, ary-Latn, fr
and en). The database is scanned by reflecting its schema, so a table added later is covered
without touching this file.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from service.batches import service as batches_service
from service.cli import app as cli_app
from service.complaints.models import Analysis, Complaint
from service.core.config import Settings, get_settings
from service.core.db import make_engine
from service.main import create_app
from service.tenants.models import Tenant
from tests.conftest import KeyFactory, auth, complaints_payload, migrate, wait_for_batch

PLANTED = Path(__file__).resolve().parents[2] / "datasets" / "redaction" / "planted.jsonl"
LANGUAGES = ("ar", "ary", "ary-Latn", "fr", "en")
KINDS = {"email", "phone", "cin", "iban", "card"}
MARK = "privmark"  # a non-personal token in every posted text: it survives redaction
TO_ASCII = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
COMPLAINT_ID_KEYS = ("complaint_id", "complaint_ids", "representative_ids")  # in JSON documents
SEPARATORS = str.maketrans("", "", " .-/\u00a0")


def planted_rows(per_language: int) -> list[dict[str, Any]]:
    """The first rows with planted data of each language, covering every kind in every one."""
    rows = [json.loads(line) for line in PLANTED.read_text(encoding="utf-8").splitlines() if line]
    chosen: list[dict[str, Any]] = []
    for language in LANGUAGES:
        mine = [r for r in rows if r["language"] == language and r["planted"]]
        picked = mine[:per_language]
        missing = KINDS - {p["kind"] for r in picked for p in r["planted"]}
        for kind in sorted(missing):
            row = next(r for r in mine if any(p["kind"] == kind for p in r["planted"]))
            if row not in picked:
                picked.append(row)
        chosen.extend(picked)
    return chosen


def planted_payload(
    rows: list[dict[str, Any]], received_at: datetime | None, *, prefix: str = "p"
) -> dict[str, Any]:
    complaints = []
    for i, row in enumerate(rows):
        item: dict[str, Any] = {
            "id": f"{prefix}-{row['id']}",
            "text": f"{row['text']} {MARK}{i}",
            "channel": "web",
            "service": ["civil_registry", "health", "tax"][i % 3],
        }
        if received_at is not None:
            item["received_at"] = received_at.isoformat()
        complaints.append(item)
    return {"complaints": complaints}


def planted_values(rows: list[dict[str, Any]]) -> set[str]:
    return {p["value"] for r in rows for p in r["planted"]}


def leaks(haystack: str, values: set[str]) -> list[str]:
    """Planted values found in `haystack`: as written, with ASCII digits, or without separators."""
    ascii_haystack = haystack.translate(TO_ASCII)
    compact_haystack = ascii_haystack.translate(SEPARATORS)
    found = []
    for value in values:
        ascii_value = value.translate(TO_ASCII)
        compact = ascii_value.translate(SEPARATORS)
        if (
            value in haystack
            or ascii_value in ascii_haystack
            or (len(compact) >= 8 and compact in compact_haystack)
        ):
            found.append(value)
    return found


# -- the database, reflected -------------------------------------------------------------------


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(key, leaf) pairs of a JSON document; a string that holds JSON is opened too."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)
    elif isinstance(value, str) and value[:1] in ("{", "["):
        yield key, value
        with contextlib.suppress(ValueError):
            yield from _walk(json.loads(value), key)
    else:
        yield key, value


def stored_cells(engine: Engine) -> Iterator[tuple[str, str, str, Any]]:
    """(table, column, JSON key or "", value) for every leaf value of every column of every
    table the database holds, whatever the models say."""
    tables = inspect(engine).get_table_names()
    assert "complaints" in tables and "theme_runs" in tables
    preparer = engine.dialect.identifier_preparer
    with engine.connect() as connection:
        for table in tables:
            result = connection.execute(text(f"SELECT * FROM {preparer.quote(table)}"))
            columns = list(result.keys())
            for row in result:
                for column, value in zip(columns, row, strict=True):
                    for key, leaf in _walk(value):
                        yield table, column, key, leaf


def planted_leaks(engine: Engine, values: set[str]) -> list[tuple[str, str, str]]:
    return [
        (table, column, value)
        for table, column, _key, leaf in stored_cells(engine)
        if isinstance(leaf, str)
        for value in leaks(leaf, values)
    ]


# -- the scenario --------------------------------------------------------------------------------


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


def run_purge(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("SAWT_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["purge", *args])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.stdout


GROUPINGS = ("language", "service", "language,service")  # the cube's levels, then the rollups


def sql_recount(engine: Engine, tenant: str, dims: tuple[str, ...]) -> Counter[tuple[str, ...]]:
    """(month, *dims, sentiment) → complaints, counted from the complaints themselves."""
    latest = select(func.max(Analysis.id)).group_by(Analysis.complaint_id).scalar_subquery()
    query = (
        select(Complaint, Analysis)
        .join(Analysis, Analysis.complaint_id == Complaint.id)
        .join(Tenant, Tenant.id == Complaint.tenant_id)
        .where(Analysis.id.in_(latest), Tenant.name == tenant)
    )
    with Session(engine) as session:
        rows = session.execute(query).all()
    values = {
        "language": lambda c, a: a.language,
        "service": lambda c, a: c.service or "",
    }
    return Counter(
        (f"{c.received_at:%Y-%m}-01", *(values[d](c, a) for d in dims), a.sentiment)
        for c, a in rows
    )


def api_counts(client: TestClient, key: str, dims: tuple[str, ...]) -> Counter[tuple[str, ...]]:
    params = {"granularity": "month", "from": "2019-01-01", "group_by": ",".join(dims)}
    response = client.get("/v1/trends", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    counts: Counter[tuple[str, ...]] = Counter()
    for point in response.json()["series"]:
        for label in ("negative", "neutral", "positive"):
            group = tuple(point["group"][d] or "" for d in dims)
            counts[(point["period"], *group, label)] += point[label]
    return +counts  # without the zeros


@pytest.mark.slow
def test_no_planted_data_is_stored_and_purge_leaves_no_copy(
    client: TestClient,
    make_key: KeyFactory,
    settings: Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = make_key("ministry", tenant="privacy-a")
    other = make_key("ministry", tenant="privacy-b")
    analyst, admin = make_key("analyst"), make_key("admin")
    rows = planted_rows(per_language=12)
    values = planted_values(rows)
    old = datetime.now(UTC) - timedelta(days=30)
    batches = [
        client.post("/v1/batches", json=planted_payload(rows, old), headers=auth(owner)),
        client.post("/v1/batches", json=complaints_payload(4, prefix="new"), headers=auth(owner)),
    ]
    other_old = complaints_payload(3, prefix="b-old")
    for item in other_old["complaints"]:
        item["received_at"] = old.isoformat()
    kept_batch = client.post("/v1/batches", json=other_old, headers=auth(other))
    for response, key in [(batches[0], owner), (batches[1], owner), (kept_batch, other)]:
        assert response.status_code == 202, response.text
        wait_for_batch(client, response.json()["id"], key)
    results = client.get(
        f"/v1/batches/{batches[0].json()['id']}/results",
        params={"limit": 1000},
        headers=auth(owner),
    ).json()["items"]
    assert len(results) == len(rows) and all(r["status"] == "analysed" for r in results)
    planted_ids = {r["complaint_id"] for r in results}

    discovered = client.post("/v1/themes/discover", params={"days": 60}, headers=auth(owner))
    assert discovered.status_code == 200, discovered.text
    represented = {
        int(i) for theme in discovered.json()["themes"] for i in theme["representative_ids"]
    }
    assert represented & planted_ids, "discovery kept no planted complaint: nothing to scrub"
    for path in ("/v1/alerts", "/v1/reports/summary", "/v1/complaints", "/v1/themes"):
        assert client.get(path, headers=auth(owner)).status_code == 200, path
    assert client.get("/v1/complaints", headers=auth(analyst)).status_code == 200
    some_id = min(planted_ids)
    assert client.get(f"/v1/complaints/{some_id}", headers=auth(analyst)).status_code == 200

    assert planted_leaks(engine, values) == []

    with engine.connect() as connection:
        texts = set(connection.scalars(select(Complaint.text).where(Complaint.id.in_(planted_ids))))
        embeddings = [
            bytes(e)
            for e in connection.scalars(
                select(Analysis.embedding).where(Analysis.complaint_id.in_(planted_ids))
            )
            if e is not None
        ]
    assert len(texts) == len(rows) and len(embeddings) == len(rows)
    assert all(MARK in t for t in texts)

    out = run_purge(settings, monkeypatch, "--older-than", "20", "--tenant", "privacy-a")
    assert f"complaints={len(rows)} " in out

    left, purged = [], {str(i) for i in planted_ids}
    for table, column, key, leaf in stored_cells(engine):
        if isinstance(leaf, str) and any(t in leaf for t in texts):
            left.append((table, column, "text"))
        if isinstance(leaf, bytes | memoryview) and any(e in bytes(leaf) for e in embeddings):
            left.append((table, column, "embedding"))
        names_complaint = column.endswith("complaint_id") or (
            table == "complaints" and column == "id"
        )
        names_ids = names_complaint or key.endswith(COMPLAINT_ID_KEYS)
        if names_ids and str(leaf) in purged and table != "audit_events":
            left.append((table, f"{column}.{key}", "id"))
    assert left == []
    themes = client.get("/v1/themes", headers=auth(owner)).json()["themes"]
    assert all(not set(t["representative_ids"]) & set(map(str, planted_ids)) for t in themes)
    assert client.get(f"/v1/complaints/{some_id}", headers=auth(analyst)).status_code == 404
    audited = client.get("/v1/audit", headers=auth(admin)).json()["items"]
    assert f"complaint:{some_id}" in {e["resource"] for e in audited}  # ids only, by design

    for tenant, key in [("privacy-a", owner), ("privacy-b", other)]:
        for grouping in GROUPINGS:
            dims = tuple(grouping.split(","))
            assert api_counts(client, key, dims) == sql_recount(engine, tenant, dims), grouping
    assert sum(sql_recount(engine, "privacy-a", ()).values()) == 4
    assert sum(sql_recount(engine, "privacy-b", ()).values()) == 3


# -- logs and error responses ----------------------------------------------------------------


def invalid_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows refused at upload, each carrying planted data and the marker where it could leak."""
    first, second = rows[0], rows[1]
    return [
        {"id": "bad-date", "text": f"{first['text']} {MARK}bad", "received_at": "yesterday"},
        {"id": "too-long", "text": f"{first['text']} {MARK}long " + "x" * 20_000},
        {"id": "bad-field", "text": f"{MARK}field", "phone": second["planted"][0]["value"]},
        {"id": "bad-type", "text": [second["text"], f"{MARK}list"]},
        {"id": "bad-meta", "text": f"{MARK}meta", "metadata": {"contact": {"v": second["text"]}}},
    ]


def failing_analyze(original: Callable[..., Any]) -> Callable[..., Any]:
    """The pipeline failing on one text, with an exception that quotes it (as some do)."""

    def analyze(self: Any, texts: Any, **kwargs: Any) -> Any:
        if any("failme" in t for t in texts):
            raise ValueError(f"model refused {list(texts)!r}")
        return original(self, texts, **kwargs)

    return analyze


def _redact_that_quotes(text: str) -> Any:
    raise RuntimeError(f"redaction crashed on {text!r}")


@pytest.fixture
def logs(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """What the service's own log handler writes (`service.core.logging`), at DEBUG."""
    stream = io.StringIO()
    yield stream
    handler = next((h for h in logging.getLogger().handlers if h.get_name() == "sawt"), None)
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(io.StringIO())  # no later write to a closed or foreign stream


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_logs_at_debug_never_hold_planted_data_or_complaint_text(
    database_url: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    logs: io.StringIO,
    fmt: str,
) -> None:
    from models.pipeline import AnalysisPipeline

    settings = make_settings(database_url, log_level="DEBUG", log_format=fmt)
    migrate(settings.database_url)
    app = create_app(settings)
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "sawt")
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(logs)
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(AnalysisPipeline, "analyze", failing_analyze(AnalysisPipeline.analyze))
    rows = planted_rows(per_language=1)
    values = planted_values(rows)
    payload = planted_payload(rows, None)
    payload["complaints"][0]["text"] += " failme"
    payload["complaints"] += invalid_rows(rows)
    key = KeyFactory(settings)("ministry", tenant="privacy-logs")

    with TestClient(app, raise_server_exceptions=False) as client:
        posted = client.post("/v1/batches", json=payload, headers=auth(key))
        assert posted.status_code == 202, posted.text
        assert posted.json()["rejected"] == len(invalid_rows(rows))
        done = wait_for_batch(client, posted.json()["id"], key)
        monkeypatch.setattr(batches_service, "redact", _redact_that_quotes)
        crash = planted_payload(rows, None, prefix="crash")
        crashed = client.post("/v1/batches", json=crash, headers=auth(key))
    assert done["status"] == "done"
    assert crashed.status_code == 500

    written = logs.getvalue()
    assert "POST /v1/batches 202" in written and "RuntimeError" in written  # it did capture
    assert "chunk analysis failed" in written and "ValueError" in written
    if fmt == "json":
        assert all(json.loads(line) for line in written.splitlines() if line.startswith("{"))
    assert leaks(written, values) == []
    assert MARK not in written
    for record in caplog.records:
        shown = record.getMessage() + json.dumps(
            {k: str(v) for k, v in record.__dict__.items() if k not in ("exc_info", "exc_text")}
        )
        assert leaks(shown, values) == [] and MARK not in shown, record.name


def test_error_responses_never_echo_complaint_text(
    database_url: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(database_url, max_upload_bytes=64 * 1024, max_batch_rows=40)
    migrate(settings.database_url)
    make_key = KeyFactory(settings)
    key, admin = make_key("ministry", tenant="privacy-errors"), make_key("admin")
    rows = planted_rows(per_language=1)
    values = planted_values(rows)
    answers = []
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        refused = client.post(
            "/v1/batches", json={"complaints": invalid_rows(rows)}, headers=auth(key)
        )
        assert refused.status_code == 422, refused.text
        assert len(refused.json()["detail"]["errors"]) == len(invalid_rows(rows))
        mixed = client.post(
            "/v1/batches",
            json={"complaints": planted_payload(rows[:2], None)["complaints"] + invalid_rows(rows)},
            headers=auth(key),
        )
        assert mixed.status_code == 202, mixed.text
        progress = client.get(f"/v1/batches/{mixed.json()['id']}", headers=auth(key))
        assert progress.json()["errors"], "the per-row errors are stored and shown"
        many = planted_payload(rows * 4, None)
        for i, item in enumerate(many["complaints"]):
            item["id"] += f"-{i}"
        big = {"complaints": [{"text": rows[0]["text"] * 300}]}
        answers += [refused, mixed, progress]
        answers.append(client.post("/v1/batches", json=many, headers=auth(key)))
        answers.append(client.post("/v1/batches", json=big, headers=auth(key)))
        answers.append(
            client.post(
                "/v1/batches",
                content="\n".join(json.dumps(c) for c in many["complaints"]),
                headers={**auth(key), "Content-Type": "application/x-ndjson"},
            )
        )
        too_long = f"{rows[0]['text']} {MARK}analyze " + "x" * 10_000
        answers.append(client.post("/v1/analyze", json={"texts": [too_long]}, headers=auth(admin)))
        answers.append(
            client.post(
                "/v1/analyze",
                json={"texts": [{"id": "a", "text": too_long}]},
                headers=auth(admin),
            )
        )
        topic = {"id": "privacy", "name": "privacy", "examples": [too_long, "abc", "def"]}
        answers.append(client.post("/v1/topics", json=topic, headers=auth(key)))
        answers.append(
            client.patch(
                "/v1/complaints/1/labels",
                json={"sentiment": "negative", "note": too_long},
                headers=auth(admin),
            )
        )
        monkeypatch.setattr(batches_service, "redact", _redact_that_quotes)
        crash = planted_payload(rows, None, prefix="crash")
        answers.append(client.post("/v1/batches", json=crash, headers=auth(key)))

    statuses = [a.status_code for a in answers]
    assert statuses == [422, 202, 200, 413, 413, 413, 422, 422, 422, 422, 500], statuses
    for answer in answers:
        assert leaks(answer.text, values) == [], answer.request.url
        assert MARK not in answer.text, answer.request.url


def planted_phone() -> tuple[dict[str, Any], str]:
    """A planted row and the raw phone number planted in it."""
    row = planted_rows(per_language=1)[0]
    return row, next(p["value"] for p in row["planted"] if p["kind"] == "phone")


def test_a_shifted_column_is_not_echoed_in_row_errors(
    client: TestClient, make_key: KeyFactory, engine: Engine
) -> None:
    key = make_key("ministry", tenant="privacy-shifted")
    row, phone = planted_phone()
    shifted = {"id": "shifted", "text": "web", "received_at": f"{MARK} {phone}"}
    posted = client.post(
        "/v1/batches",
        json={"complaints": [shifted, *planted_payload([row], None)["complaints"]]},
        headers=auth(key),
    )

    assert posted.status_code == 202, posted.text
    assert posted.json()["rejected"] == 1
    assert leaks(posted.text, {phone}) == [] and MARK not in posted.text
    assert planted_leaks(engine, {phone}) == []
    # The marker is stored only where it belongs: in the valid row's (redacted) text.
    assert {hit[:2] for hit in planted_leaks(engine, {MARK})} == {("complaints", "text")}


def test_metadata_values_are_redacted_like_the_text(
    client: TestClient, make_key: KeyFactory, engine: Engine
) -> None:
    key = make_key("ministry", tenant="privacy-metadata")
    _row, phone = planted_phone()
    complaint = {
        "id": "with-metadata",
        "text": "Le guichet était fermé toute la matinée.",
        "metadata": {"callback": f"rappeler au {phone}", "agent": "guichet 4"},
    }
    posted = client.post("/v1/batches", json={"complaints": [complaint]}, headers=auth(key))

    assert posted.status_code == 202, posted.text
    assert planted_leaks(engine, {phone}) == []
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT metadata, redactions FROM complaints")).one()
    metadata = stored[0] if isinstance(stored[0], dict) else json.loads(stored[0])
    redactions = stored[1] if isinstance(stored[1], list) else json.loads(stored[1])
    assert metadata["agent"] == "guichet 4" and metadata["callback"].startswith("rappeler au ")
    assert "phone" in redactions
