"""Hostile and broken uploads (issue #6), through HTTP on both databases.

Each input answers a clear 4xx naming the problem (and the row and field for a row error) or is
handled; none answers 5xx, and afterwards the database holds exactly the rows that were accepted:
nothing of a refused upload, every valid row of a partly rejected one.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from models.text.normalize import BIDI_CONTROLS
from service.batches.models import Batch
from service.complaints.models import Complaint
from service.core.config import Settings
from service.core.db import make_engine
from service.main import create_app
from service.tenants.models import Tenant
from tests.conftest import (
    DATABASES,
    POSTGRES_URL,
    KeyFactory,
    _postgres_schema_url,
    auth,
    migrate,
)

JSON = "application/json"
JSONL = "application/x-ndjson"
CSV = "text/csv"
TEN_MB = 10 * 1024 * 1024


@dataclass
class Env:
    """One app (no job runner: these tests are about what ingest stores) on one database."""

    client: TestClient
    settings: Settings
    engine: Engine


@pytest.fixture(scope="module", params=DATABASES)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """Module-scoped: starting the app loads the models, seconds each time."""
    schema: Iterator[str] | None = None
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("hostile") / "sawt.db"
        url = f"sqlite:///{path}"
    else:
        if not POSTGRES_URL:
            pytest.skip("SAWT_TEST_POSTGRES_URL is not set (.ci/run sets it)")
        schema = _postgres_schema_url(POSTGRES_URL)
        url = next(schema)
    settings = Settings(environment="test", database_url=url)  # type: ignore[arg-type]
    migrate(url)
    engine = make_engine(url)
    try:
        with TestClient(create_app(settings, start_runner=False)) as client:
            yield Env(client=client, settings=settings, engine=engine)
    finally:
        engine.dispose()
        if schema is not None:
            next(schema, None)  # drops the schema


@dataclass
class TenantKey:
    name: str
    headers: dict[str, str]


@pytest.fixture
def tenant(env: Env) -> TenantKey:
    """A fresh tenant per test, so its stored rows are exactly what this test posted."""
    name = f"hostile-{uuid.uuid4().hex[:10]}"
    return TenantKey(name=name, headers=auth(KeyFactory(env.settings)(tenant=name)))


def stored(env: Env, tenant: TenantKey) -> list[tuple[str | None, str]]:
    """(external id, text) of every complaint the tenant has, in insertion order."""
    with env.engine.connect() as connection:
        rows = connection.execute(
            select(Complaint.external_id, Complaint.text)
            .join(Tenant, Tenant.id == Complaint.tenant_id)
            .where(Tenant.name == tenant.name)
            .order_by(Complaint.id)
        ).all()
    return [(external_id, text) for external_id, text in rows]


def batch_count(env: Env, tenant: TenantKey) -> int:
    with env.engine.connect() as connection:
        return int(
            connection.scalar(
                select(func.count())
                .select_from(Batch)
                .join(Tenant, Tenant.id == Batch.tenant_id)
                .where(Tenant.name == tenant.name)
            )
            or 0
        )


def post(
    env: Env,
    tenant: TenantKey,
    body: bytes,
    content_type: str | None,
    *,
    headers: dict[str, str] | None = None,
    multipart: bool = False,
) -> Any:
    """POST /v1/batches with the body raw, or as a multipart `file` field."""
    if multipart:
        suffix = {JSON: "json", JSONL: "jsonl", CSV: "csv"}.get(content_type or "", "bin")
        return env.client.post(
            "/v1/batches",
            files={"file": (f"upload.{suffix}", body, content_type or "application/octet-stream")},
            headers={**tenant.headers, **(headers or {})},
        )
    extra = {"Content-Type": content_type} if content_type else {}
    return env.client.post(
        "/v1/batches", content=body, headers={**tenant.headers, **extra, **(headers or {})}
    )


def encode_rows(rows: list[dict[str, Any]], fmt: str) -> bytes:
    """The same rows as a JSON array, JSON Lines or CSV (id,text) body."""
    if fmt == JSON:
        return json.dumps({"complaints": rows}, ensure_ascii=False).encode()
    if fmt == JSONL:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "text"])
    writer.writerows([r["id"], r["text"]] for r in rows)
    return buffer.getvalue().encode()


def assert_nothing_stored(env: Env, tenant: TenantKey) -> None:
    assert stored(env, tenant) == []
    assert batch_count(env, tenant) == 0


FORMATS = [
    pytest.param(JSON, False, id="json"),
    pytest.param(JSONL, False, id="jsonl"),
    pytest.param(CSV, False, id="csv"),
    pytest.param(CSV, True, id="multipart-csv"),
]


# --- compressed bodies ----------------------------------------------------------------------------


@functools.cache
def _bomb(coding: str) -> bytes:
    """A few tens of kilobytes that inflate to 50 MB of JSON."""
    inflated = b'{"complaints": [' + b" " * 50_000_000 + b'{"id": "b", "text": "x"}]}'
    return gzip.compress(inflated) if coding.startswith("gzip") else zlib.compress(inflated, 9)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "gzip, identity"])
@pytest.mark.parametrize(("content_type", "multipart"), FORMATS)
def test_compressed_batch_body_is_refused_with_415(
    env: Env, tenant: TenantKey, coding: str, content_type: str, multipart: bool
) -> None:
    body = _bomb(coding)
    assert len(body) < 200_000

    started = time.monotonic()
    response = post(
        env, tenant, body, content_type, headers={"Content-Encoding": coding}, multipart=multipart
    )

    assert response.status_code == 415, response.text
    assert "Content-Encoding" in response.json()["detail"]
    assert time.monotonic() - started < 5
    assert_nothing_stored(env, tenant)


def test_identity_content_encoding_is_accepted(env: Env, tenant: TenantKey) -> None:
    body = encode_rows([{"id": "i1", "text": "Le guichet est fermé"}], JSON)

    response = post(env, tenant, body, JSON, headers={"Content-Encoding": "identity"})

    assert response.status_code == 202, response.text
    assert stored(env, tenant) == [("i1", "Le guichet est fermé")]


def test_compressed_analyze_body_is_refused_with_415(env: Env, tenant: TenantKey) -> None:
    body = gzip.compress(json.dumps({"texts": ["x" * 1000] * 100}).encode())

    response = env.client.post(
        "/v1/analyze",
        content=body,
        headers={**tenant.headers, "Content-Type": JSON, "Content-Encoding": "gzip"},
    )

    assert response.status_code == 415, response.text
    assert "Content-Encoding" in response.json()["detail"]


def test_openapi_documents_the_415_for_compressed_bodies(env: Env) -> None:
    paths = env.client.get("/openapi.json").json()["paths"]

    for path in ("/v1/batches", "/v1/analyze"):
        operation = paths[path]["post"]
        assert "Content-Encoding" in operation["description"]
        assert "415" in operation["responses"]


# --- deep nesting ---------------------------------------------------------------------------------

DEPTH = 100_000


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * DEPTH + b"]" * DEPTH, id="array"),
        pytest.param(b'{"complaints": ' + b"[" * DEPTH + b"]" * DEPTH + b"}", id="complaints"),
        pytest.param(b'[{"text": "x", "metadata": {"k": ' + b"[" * DEPTH + b"}}]", id="metadata"),
    ],
)
def test_deeply_nested_json_batch_is_400_fast(env: Env, tenant: TenantKey, body: bytes) -> None:
    started = time.monotonic()
    response = post(env, tenant, body, JSON)

    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.json()["detail"]
    assert time.monotonic() - started < 5
    assert_nothing_stored(env, tenant)


def test_deeply_nested_json_line_rejects_only_its_row(env: Env, tenant: TenantKey) -> None:
    body = (
        b'{"id": "n1", "text": "first"}\n'
        + b'{"id": "n2", "text": "x", "metadata": '
        + b"[" * DEPTH
        + b'\n{"id": "n3", "text": "third"}\n'
    )

    response = post(env, tenant, body, JSONL)

    assert response.status_code == 202, response.text
    (error,) = response.json()["errors"]
    assert error["row"] == 2 and "nested too deeply" in error["message"]
    assert stored(env, tenant) == [("n1", "first"), ("n3", "third")]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * DEPTH + b"]" * DEPTH, id="array"),
        pytest.param(b'{"texts": [' + b"[" * DEPTH + b"]" * DEPTH + b"]}", id="texts"),
    ],
)
def test_deeply_nested_json_analyze_is_400_fast(env: Env, tenant: TenantKey, body: bytes) -> None:
    started = time.monotonic()
    response = env.client.post(
        "/v1/analyze", content=body, headers={**tenant.headers, "Content-Type": JSON}
    )

    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.json()["detail"]
    assert time.monotonic() - started < 5


# --- a 10 MB text ---------------------------------------------------------------------------------


@pytest.mark.parametrize("filler", ["a", "ب"], ids=["ascii", "arabic"])
@pytest.mark.parametrize(("content_type", "multipart"), FORMATS)
def test_ten_megabyte_text_rejects_its_row_and_keeps_the_others(
    env: Env, tenant: TenantKey, content_type: str, multipart: bool, filler: str
) -> None:
    huge = filler * (TEN_MB // len(filler.encode()))
    rows = [
        {"id": "m1", "text": "Le bureau ouvre trop tard"},
        {"id": "m2", "text": huge},
        {"id": "m3", "text": "الموظف ما جاش"},
    ]

    response = post(env, tenant, encode_rows(rows, content_type), content_type, multipart=multipart)

    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    (error,) = answer["errors"]
    assert (error["row"], error["field"]) == (2, "text")
    assert f"longer than 10000 characters ({len(huge)})" in error["message"]
    assert len(response.content) < 10_000  # the text is not echoed
    assert stored(env, tenant) == [("m1", rows[0]["text"]), ("m3", rows[2]["text"])]


def test_ten_megabyte_text_alone_is_422_naming_row_and_field(env: Env, tenant: TenantKey) -> None:
    body = encode_rows([{"id": "only", "text": "x" * TEN_MB}], JSONL)

    response = post(env, tenant, body, JSONL)

    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]["errors"]
    assert (error["row"], error["field"]) == (1, "text")
    assert len(response.content) < 10_000
    assert_nothing_stored(env, tenant)


def test_ten_megabyte_analyze_text_is_422_naming_the_text(env: Env, tenant: TenantKey) -> None:
    response = env.client.post(
        "/v1/analyze", json={"texts": ["ok", "x" * TEN_MB]}, headers=tenant.headers
    )

    assert response.status_code == 422, response.text
    locations = {tuple(e["loc"][:3]) for e in response.json()["detail"]}
    assert locations == {("body", "texts", 1)}
    assert any("10000 characters" in e["msg"] for e in response.json()["detail"])
    assert len(response.content) < 10_000  # the text is not echoed


# --- NUL bytes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b'[{"id": "z1", "text": "bon\\u0000jour"}]', JSON, id="json-escape"),
        pytest.param(b'[{"id": "z1", "text": "bon\x00jour"}]', JSON, id="json-raw"),
        pytest.param(b'{"id": "z1", "text": "bon\x00jour"}\n', JSONL, id="jsonl-raw"),
        pytest.param(b"id,text\nz1,bon\x00jour\n", CSV, id="csv-raw"),
        pytest.param(b'id,text\nz1,"bon\x00jour"\n', CSV, id="csv-quoted"),
        pytest.param(b"i\x00d,te\x00xt\nz1,bonjour\n", CSV, id="csv-header"),
    ],
)
def test_nul_bytes_are_removed_and_the_row_kept(
    env: Env, tenant: TenantKey, body: bytes, content_type: str
) -> None:
    response = post(env, tenant, body, content_type)

    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1
    assert stored(env, tenant) == [("z1", "bonjour")]


def test_text_of_only_nul_bytes_is_an_empty_text(env: Env, tenant: TenantKey) -> None:
    body = b'[{"id": "e1", "text": "\\u0000\\u0000 "}, {"id": "e2", "text": "fine"}]'

    response = post(env, tenant, body, JSON)

    assert response.status_code == 202, response.text
    (error,) = response.json()["errors"]
    assert (error["row"], error["field"], error["message"]) == (1, "text", "text is empty")
    assert stored(env, tenant) == [("e2", "fine")]


# --- invalid UTF-8 and unpaired surrogates --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "multipart"),
    [
        pytest.param(b'[{"text": "caf\xe9 \xff\xfe"}]', JSON, False, id="json"),
        pytest.param(b'{"text": "ok"}\n{"text": "\xc3\x28"}\n', JSONL, False, id="jsonl"),
        pytest.param(b'{"text": "\xed\xa0\x80"}\n', JSONL, False, id="jsonl-utf8-surrogate"),
        pytest.param(
            b"id,text\n1,ok\n2,\xff\xfe\xfa\x81\n", f"{CSV}; charset=utf-8", False, id="csv"
        ),
        pytest.param(b'[{"text": "\xc0\xaf"}]', JSON, True, id="multipart-json"),
    ],
)
def test_invalid_utf8_is_400_naming_the_byte(
    env: Env, tenant: TenantKey, body: bytes, content_type: str, multipart: bool
) -> None:
    response = post(env, tenant, body, content_type, multipart=multipart)

    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "not valid utf-8" in detail and "byte offset" in detail and "line" in detail
    assert_nothing_stored(env, tenant)


def test_unpaired_surrogate_escapes_become_replacement_characters(
    env: Env, tenant: TenantKey
) -> None:
    body = (
        b'[{"id": "s1", "text": "emoji cut \\ud83d here", "metadata": {"k\\udc00": "v\\ud800"}},'
        b' {"id": "s2", "text": "whole \\ud83d\\ude00 emoji"}]'
    )

    response = post(env, tenant, body, JSON)

    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 2
    assert stored(env, tenant) == [("s1", "emoji cut \ufffd here"), ("s2", "whole 😀 emoji")]


def test_unpaired_surrogate_in_analyze_is_422_not_500(env: Env, tenant: TenantKey) -> None:
    response = env.client.post(
        "/v1/analyze",
        content=b'{"texts": ["ok", "cut \\ud83d"]}',
        headers={**tenant.headers, "Content-Type": JSON},
    )

    assert response.status_code == 422, response.text
    assert {tuple(e["loc"][:3]) for e in response.json()["detail"]} == {("body", "texts", 1)}


# --- mixed encodings in one CSV -------------------------------------------------------------------

MIXED_ROWS = [
    ("u1", "بقيت كنتسنى شهر كامل وحتى واحد ما جاوبني", "utf-8"),
    ("w1", "انقطاع الماء المتكرر في الحي منذ أسبوع", "cp1256"),
    ("u2", "Le portail est en panne, impossible de payer", "utf-8"),
    ("u3", "الموظف ما بغاش يجاوبني، والإدارة مسدودة", "utf-8"),
    ("w2", "الطريق محفرة والإنارة مقطوعة", "cp1256"),
]


def mixed_csv() -> bytes:
    """Each row in its own encoding, as when two exports are pasted into one file."""
    return b"id,text\n" + b"".join(f'{i},"{t}"\n'.encode(enc) for i, t, enc in MIXED_ROWS)


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_csv_mixing_utf8_and_cp1256_rows_is_read_line_by_line(
    env: Env, tenant: TenantKey, multipart: bool
) -> None:
    body = mixed_csv()
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")

    response = post(env, tenant, body, CSV, multipart=multipart)

    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (5, 0)
    (note,) = answer["errors"]
    assert note["row"] is None and "windows-1256" in note["message"]
    assert "file lines 3, 6" in note["message"]  # the header is file line 1
    assert stored(env, tenant) == [(i, t) for i, t, _ in MIXED_ROWS]


def test_declared_encoding_still_wins_over_mixed_detection(env: Env, tenant: TenantKey) -> None:
    body = mixed_csv()

    response = env.client.post(
        "/v1/batches?encoding=utf-8", content=body, headers={**tenant.headers, "Content-Type": CSV}
    )

    assert response.status_code == 400, response.text
    assert "line 3" in response.json()["detail"]
    assert_nothing_stored(env, tenant)


# --- bidi controls --------------------------------------------------------------------------------

BIDI_TEXT = (
    "facture \u202egnp.exe\u202c payée \u2067٣٤٥\u2069 \u200fmerci\u200e \u061cok "
    "\u202a\u202b\u202d\u2066\u2068"
)
BIDI_CLEAN = "facture gnp.exe payée ٣٤٥ merci ok"


@pytest.mark.parametrize(("content_type", "multipart"), FORMATS)
def test_bidi_controls_never_reach_storage_or_results(
    env: Env, tenant: TenantKey, content_type: str, multipart: bool
) -> None:
    rows = [{"id": "\u202eb1", "text": BIDI_TEXT}]

    response = post(env, tenant, encode_rows(rows, content_type), content_type, multipart=multipart)

    assert response.status_code == 202, response.text
    assert stored(env, tenant) == [("b1", BIDI_CLEAN)]
    batch_id = response.json()["id"]
    results = env.client.get(f"/v1/batches/{batch_id}/results", headers=tenant.headers)
    as_csv = env.client.get(
        f"/v1/batches/{batch_id}/results", headers={**tenant.headers, "Accept": "text/csv"}
    )
    assert results.json()["items"][0]["text"] == BIDI_CLEAN
    assert not BIDI_CONTROLS & set(results.text + as_csv.text)


def test_bidi_controls_in_metadata_are_removed(env: Env, tenant: TenantKey) -> None:
    body = json.dumps(
        [
            {
                "id": "b2",
                "text": "ok",
                "service": "he\u202ealth",
                "metadata": {"a\u2066b": "c\u202ed"},
            }
        ]
    ).encode()

    response = post(env, tenant, body, JSON)

    assert response.status_code == 202, response.text
    with env.engine.connect() as connection:
        service, extra = connection.execute(
            select(Complaint.service, Complaint.extra).where(Complaint.external_id == "b2")
        ).one()
    assert (service, extra) == ("health", {"ab": "cd"})


def test_bidi_controls_are_not_in_analyze_results(env: Env, tenant: TenantKey) -> None:
    response = env.client.post("/v1/analyze", json={"texts": [BIDI_TEXT]}, headers=tenant.headers)

    assert response.status_code == 200, response.text
    text = response.json()["results"][0]["text"]
    assert not BIDI_CONTROLS & set(text)
    assert text.strip() == BIDI_CLEAN


# --- empty uploads --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "multipart", "needle"),
    [
        pytest.param(b"", JSON, False, "no complaints", id="json-empty"),
        pytest.param(b"  \n ", JSON, False, "no complaints", id="json-blank"),
        pytest.param(b"[]", JSON, False, "no complaints", id="json-array"),
        pytest.param(b'{"complaints": []}', JSON, False, "no complaints", id="json-object"),
        pytest.param(b"", JSONL, False, "no complaints", id="jsonl-empty"),
        pytest.param(b"\n\n  \n", JSONL, False, "no complaints", id="jsonl-blank-lines"),
        pytest.param(b"", CSV, False, "no complaints", id="csv-empty"),
        pytest.param(b"id,text\n", CSV, False, "no complaints", id="csv-header-only"),
        pytest.param(
            b"\xef\xbb\xbfid,text\r\n\r\n,\r\n", CSV, False, "no complaints", id="csv-bom"
        ),
        pytest.param(b"", CSV, True, "no complaints", id="multipart-empty"),
        pytest.param(b"id,text\n", CSV, True, "no complaints", id="multipart-header-only"),
    ],
)
def test_empty_uploads_are_422(
    env: Env, tenant: TenantKey, body: bytes, content_type: str, multipart: bool, needle: str
) -> None:
    response = post(env, tenant, body, content_type, multipart=multipart)

    assert response.status_code == 422, response.text
    assert needle in response.text
    assert_nothing_stored(env, tenant)


def test_multipart_without_a_file_field_is_422(env: Env, tenant: TenantKey) -> None:
    response = env.client.post(
        "/v1/batches", files={"other": ("a.csv", b"id,text\n1,x\n", CSV)}, headers=tenant.headers
    )

    assert response.status_code == 422, response.text
    assert "`file` field" in response.text
    assert_nothing_stored(env, tenant)


def test_empty_analyze_is_422(env: Env, tenant: TenantKey) -> None:
    bodies: list[dict[str, Any]] = [{"texts": []}, {}]
    for body in bodies:
        response = env.client.post("/v1/analyze", json=body, headers=tenant.headers)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"][:2] == ["body", "texts"]


# --- 100,000 identical complaints -----------------------------------------------------------------

HUNDRED_K = 100_000
SAME_TEXT = "Appelez-moi au 06 12 34 56 78, la réclamation n'avance pas depuis trois mois."


@pytest.mark.slow
def test_hundred_thousand_identical_complaints(env: Env, tenant: TenantKey) -> None:
    body = "".join(json.dumps({"text": SAME_TEXT}) + "\n" for _ in range(HUNDRED_K)).encode()

    started = time.monotonic()
    response = post(env, tenant, body, JSONL)
    elapsed = time.monotonic() - started

    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["accepted"], answer["rejected"], answer["duplicates"]) == (HUNDRED_K, 0, 0)
    expected = SAME_TEXT.replace("06 12 34 56 78", "[PHONE]")
    rows = stored(env, tenant)
    assert len(rows) == HUNDRED_K and set(rows) == {(None, expected)}
    assert elapsed < 180, f"100,000 rows took {elapsed:.0f} s"


@pytest.mark.slow
def test_hundred_thousand_copies_of_one_id_keep_one_and_link_it_later(
    env: Env, tenant: TenantKey
) -> None:
    body = encode_rows([{"id": "same", "text": SAME_TEXT}] * HUNDRED_K, CSV)

    first = post(env, tenant, body, CSV)
    again = post(env, tenant, body, CSV)

    assert first.status_code == again.status_code == 202, first.text
    for response, duplicates in ((first, 0), (again, 1)):
        answer = response.json()
        assert (answer["accepted"], answer["rejected"]) == (1, HUNDRED_K - 1)
        assert answer["duplicates"] == duplicates
        assert answer["errors"][0]["row"] == 2 and "already used by row 1" in str(
            answer["errors"][0]["message"]
        )
    assert len(stored(env, tenant)) == 1
