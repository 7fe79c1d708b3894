"""Structured logs carry request and batch ids; /metrics reports what the store holds."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update

from service.batches.models import Batch
from service.batches.parsing import parse_upload
from service.batches.service import ingest_batch
from service.core.db import make_engine, make_session_factory
from service.core.logging import (
    ContextFilter,
    JsonFormatter,
    RequestContextMiddleware,
    bind_batch,
    request_id_var,
)
from service.ops import metrics
from service.tenants.models import Tenant
from tests.conftest import complaints_payload, migrate


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("sawt.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_batch_id_and_extras_but_never_exception_messages(
    captured: io.StringIO,
) -> None:
    logger = logging.getLogger("sawt.test")
    with bind_batch("b-123"):
        logger.info("chunk done", extra={"complaints": 3})
        citizen_text = "".join(["appelez le ", "0612345678"])
        try:
            raise ValueError(citizen_text)
        except ValueError:
            logger.exception("failed")
    logger.info("outside")

    first, failure, outside = lines(captured)
    assert first["message"] == "chunk done" and first["batch_id"] == "b-123"
    assert first["complaints"] == 3 and first["level"] == "INFO"
    assert failure["exc_type"] == "ValueError"
    assert "0612345678" not in json.dumps(failure)
    assert "batch_id" not in outside and "request_id" not in outside


def test_request_ids_are_echoed_or_made_and_requests_counted(captured: io.StringIO) -> None:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware)

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, str | None]:
        logging.getLogger("sawt.test").info("serving")
        return {"request_id": request_id_var.get()}

    before = metrics.HTTP_REQUESTS.labels("GET", "/items/{item_id}", "200")._value.get()
    with TestClient(app) as client:
        given = client.get("/items/1", headers={"X-Request-ID": "abc-123"})
        made = client.get("/items/2", headers={"X-Request-ID": "bad id\n!"})

    assert given.headers["x-request-id"] == "abc-123"
    assert given.json()["request_id"] == "abc-123"
    assert made.headers["x-request-id"] != "bad id\n!" and len(made.headers["x-request-id"]) == 32
    assert lines(captured)[0]["request_id"] == "abc-123"
    after = metrics.HTTP_REQUESTS.labels("GET", "/items/{item_id}", "200")._value.get()
    assert after - before == 2  # labelled by route template, not by raw path


def test_store_metrics_report_backlog_and_batches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    migrate(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory() as session:
        session.add(Tenant(name="health"))
        session.commit()
        upload = parse_upload(json.dumps(complaints_payload(7)).encode(), "application/json")
        first = ingest_batch(session, tenant_id=1, upload=upload, source_format="json")
        upload = parse_upload(
            json.dumps(complaints_payload(2, prefix="x")).encode(), "application/json"
        )
        ingest_batch(session, tenant_id=1, upload=upload, source_format="json")
        session.execute(update(Batch).where(Batch.id == first.batch.id).values(status="done"))
        session.commit()

    body, content_type = metrics.render(metrics.StoreCollector(factory))
    text = body.decode()

    assert content_type.startswith("text/plain")
    assert 'sawt_batches{status="queued"} 1.0' in text
    assert 'sawt_batches{status="done"} 1.0' in text
    assert "sawt_complaints_pending 2.0" in text  # only unfinished batches count
    assert "sawt_analyses_last_id 0.0" in text
    engine.dispose()
