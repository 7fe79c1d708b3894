"""Helpers for the read-side tests (trends, alerts, reports, dashboard).

The real pipeline's labels depend on trained models; these tests check arithmetic, so they run
the real `AnalysisPipeline` (redaction, storage, rollups, jobs) with stub heads that read the
labels from markers in the text: `#neg|#neu|#pos`, `#t:<topic>` (any number), `#l:<language>`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from models.language import LanguageResult
from models.pipeline import AnalysisPipeline
from tests.conftest import auth

TOPICS = [
    "delays", "digital_services", "staff_conduct", "corruption", "information", "procedures",
    "fees", "access", "infrastructure", "praise", "suggestion",
]  # fmt: skip
SENTIMENT_LABELS = ["negative", "neutral", "positive"]
_SENTIMENT = re.compile(r"#(neg|neu|pos)\b")
_TOPIC = re.compile(r"#t:([a-z_]+)")
_LANGUAGE = re.compile(r"#l:([A-Za-z-]+)")


class StubLanguage:
    def identify(self, texts: Sequence[str]) -> list[LanguageResult]:
        out = []
        for text in texts:
            found = _LANGUAGE.search(text)
            language = found.group(1) if found else "fr"
            script = "Arab" if language in ("ar", "ary") else "Latn"
            out.append(LanguageResult(language=language, script=script, confidence=1.0))
        return out


class StubSentiment:
    labels_ = SENTIMENT_LABELS

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            found = _SENTIMENT.search(text)
            index = ["neg", "neu", "pos"].index(found.group(1)) if found else 1
            row = [0.1, 0.1, 0.1]
            row[index] = 0.8
            rows.append(row)
        return np.asarray(rows)


class StubTopics:
    labels_ = TOPICS
    thresholds_ = [0.5] * len(TOPICS)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        out = np.full((len(texts), len(TOPICS)), 0.05)
        for i, text in enumerate(texts):
            for topic in _TOPIC.findall(text):
                out[i, TOPICS.index(topic)] = 0.9
        return out


def stub_pipeline() -> AnalysisPipeline:
    return AnalysisPipeline(
        language_identifier=StubLanguage(),
        sentiment_model=StubSentiment(),
        topic_model=StubTopics(),
        versions={"langid": "stub", "sentiment": "stub", "topics": "stub"},
    )


def use_stub_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve the stub pipeline; call it from a fixture that runs before `client`."""
    monkeypatch.setattr("service.main.load_pipeline", lambda settings, registry: stub_pipeline())


def use_cube(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    """Create the trend cube and maintain it with the rollups, as the lead's wiring will."""
    from service.core.db import make_engine
    from service.core.migrate import upgrade
    from service.jobs import processing
    from service.trends.cube import TrendCube, apply_cube, cube_exists

    engine = make_engine(database_url)
    try:
        upgrade(engine)
        if cube_exists(engine):  # migrated and maintained by the service itself
            return
        TrendCube.__table__.create(engine)
    finally:
        engine.dispose()
    original = processing.apply_rollups

    def both(session: Any, analysis_ids: Sequence[int]) -> None:
        original(session, analysis_ids)
        apply_cube(session, analysis_ids)

    monkeypatch.setattr(processing, "apply_rollups", both)


def complaint(
    i: int,
    *,
    sentiment: str = "neg",
    topics: Sequence[str] = (),
    language: str = "fr",
    received: date | datetime,
    service: str | None = "health",
    region: str | None = "Casablanca-Settat",
    channel: str | None = "web",
    prefix: str = "r",
    text: str = "Réclamation",
) -> dict[str, Any]:
    markers = " ".join([f"#{sentiment}", *(f"#t:{t}" for t in topics), f"#l:{language}"])
    stamp = (
        received
        if isinstance(received, datetime)
        else datetime(received.year, received.month, received.day, 10, 30, tzinfo=UTC)
    )
    row: dict[str, Any] = {
        "id": f"{prefix}-{i}",
        "text": f"{text} {i} {markers}",
        "received_at": stamp.isoformat(),
    }
    for name, value in (("service", service), ("region", region), ("channel", channel)):
        if value is not None:
            row[name] = value
    return row


def post_and_wait(
    client: TestClient, key: str, rows: list[dict[str, Any]], timeout: float = 120.0
) -> str:
    response = client.post("/v1/batches", json={"complaints": rows}, headers=auth(key))
    assert response.status_code == 202, response.text
    batch_id: str = response.json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/batches/{batch_id}", headers=auth(key)).json()
        if body["status"] == "done":
            assert body["progress"]["failed"] == 0, body
            return batch_id
        assert time.monotonic() < deadline, f"batch not done: {body['progress']}"
        time.sleep(0.05)


def monday(d: date) -> date:
    return d - timedelta(days=d.weekday())
