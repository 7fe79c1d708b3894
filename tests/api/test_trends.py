"""`GET /v1/trends` and the `GET /v1/complaints` drill-down, through HTTP, on both databases and
both rollup stores (detail rollups only, and with the trend cube)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from service.complaints.retention import purge_complaints
from service.core.config import Settings
from service.core.db import make_engine, make_session_factory, session_scope
from service.main import create_app
from service.tenants.service import get_tenant_by_name
from service.trends.cube import NO_DIMENSION, TrendCube
from service.trends.models import ALL_TOPICS
from service.trends.schemas import TrendsResponse
from tests.api.readside import complaint, post_and_wait, use_cube, use_stub_pipeline
from tests.conftest import KeyFactory, auth, migrate


@pytest.fixture(params=["cube"], autouse=True)  # the cube ships in migration 0002
def store(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> str:
    use_stub_pipeline(monkeypatch)
    if request.param == "cube":
        use_cube(monkeypatch, settings.database_url)
    return str(request.param)


# Tenant A: 8 complaints around a week boundary (Sun 5 / Mon 6 Jan) and a month boundary
# (Fri 31 Jan / Sat 1 Feb). One is sent at 00:30 on the 6th in UTC+1, which is the 5th in UTC.
A_ROWS = [
    complaint(0, sentiment="neg", topics=["delays"], received=date(2025, 1, 5)),
    {
        **complaint(1, sentiment="neg", topics=["delays"], received=date(2025, 1, 5)),
        "received_at": "2025-01-06T00:30:00+01:00",
    },
    complaint(2, sentiment="pos", topics=["praise"], received=date(2025, 1, 6)),
    complaint(3, sentiment="neu", topics=["information"], service="tax", received=date(2025, 1, 6)),
    complaint(
        4,
        sentiment="neg",
        topics=["delays", "fees"],
        service="tax",
        channel="phone",
        received=date(2025, 1, 6),
    ),
    complaint(
        5,
        sentiment="neg",
        topics=["procedures"],
        service=None,
        region=None,
        received=date(2025, 1, 31),
    ),
    complaint(
        6,
        sentiment="pos",
        topics=["praise"],
        service="tax",
        language="en",
        received=date(2025, 2, 1),
    ),
    complaint(
        7,
        sentiment="pos",
        topics=["praise"],
        service="tax",
        language="en",
        received=date(2025, 2, 1),
    ),
]
B_ROWS = [
    complaint(i, sentiment="neg", topics=["corruption"], received=date(2025, 1, 6), prefix="b")
    for i in range(5)
]


@pytest.fixture
def seeded(store: str, client: TestClient, make_key: KeyFactory) -> dict[str, str]:
    keys = {
        "a": make_key("ministry", "ministry-a"),
        "b": make_key("ministry", "ministry-b"),
        "dash_a": make_key("dashboard", "ministry-a"),
        "analyst": make_key("analyst"),
    }
    post_and_wait(client, keys["a"], A_ROWS)
    post_and_wait(client, keys["b"], B_ROWS)
    return keys


def trends(client: TestClient, key: str, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/trends", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    TrendsResponse.model_validate(body)  # the documented shape
    return body


def by_period(body: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {
        p["period"]: (p["count"], p["negative"], p["neutral"], p["positive"])
        for p in body["series"]
    }


def by_group(body: dict[str, Any], dim: str) -> dict[tuple[str, str | None], int]:
    return {(p["period"], p["group"][dim]): p["count"] for p in body["series"]}


def test_weeks_start_on_monday_and_days_are_utc(client: TestClient, seeded: dict[str, str]) -> None:
    body = trends(client, seeded["a"], granularity="week")

    assert by_period(body) == {
        "2024-12-30": (2, 2, 0, 0),  # Sunday 5 Jan, incl. 00:30 on the 6th in UTC+1
        "2025-01-06": (3, 1, 1, 1),
        "2025-01-27": (3, 1, 0, 2),  # Fri 31 Jan and Sat 1 Feb share an ISO week
    }
    assert body["totals"]["count"] == 8
    assert body["unit"] == "complaints"
    assert body["filters"]["tenant"] == "ministry-a"


def test_months_and_days(client: TestClient, seeded: dict[str, str]) -> None:
    months = trends(client, seeded["a"], granularity="month")
    assert by_period(months) == {"2025-01-01": (6, 4, 1, 1), "2025-02-01": (2, 0, 0, 2)}
    days = trends(
        client, seeded["a"], granularity="day", **{"from": "2025-01-05", "to": "2025-01-06"}
    )
    assert by_period(days) == {"2025-01-05": (2, 2, 0, 0), "2025-01-06": (3, 1, 1, 1)}
    assert days["periods"] == ["2025-01-05", "2025-01-06"]
    assert days["from"] == "2025-01-05" and days["to"] == "2025-01-06"


def test_shares_and_experience_index_follow_the_counts(
    client: TestClient, seeded: dict[str, str]
) -> None:
    body = trends(client, seeded["a"], granularity="month", group_by="service")
    for item in [*body["series"], *body["groups"], body["totals"]]:
        shares = item["shares"]
        assert abs(sum(shares.values()) - 1) < 1e-3
        assert shares["negative"] == pytest.approx(item["negative"] / item["count"], abs=1e-4)
        expected = (item["positive"] - item["negative"]) / item["count"]
        assert item["experience_index"] == pytest.approx(expected, abs=1e-4)
        assert -1 <= item["experience_index"] <= 1
    totals = body["totals"]
    assert (totals["count"], totals["negative"], totals["positive"]) == (8, 4, 3)
    assert totals["experience_index"] == pytest.approx(-1 / 8, abs=1e-4)


def test_group_by_service_counts_missing_values_as_null(
    client: TestClient, seeded: dict[str, str]
) -> None:
    body = trends(client, seeded["a"], granularity="month", group_by="service")
    assert by_group(body, "service") == {
        ("2025-01-01", "health"): 3,
        ("2025-01-01", "tax"): 2,
        ("2025-01-01", None): 1,
        ("2025-02-01", "tax"): 2,
    }
    assert [(g["group"]["service"], g["count"]) for g in body["groups"]][:1] == [("tax", 4)]


def test_group_by_topic_counts_each_complaint_once_per_topic(
    client: TestClient, seeded: dict[str, str]
) -> None:
    body = trends(client, seeded["a"], granularity="month", group_by="topic")
    assert body["unit"] == "complaint_topics"
    assert by_group(body, "topic") == {
        ("2025-01-01", "delays"): 3,
        ("2025-01-01", "fees"): 1,
        ("2025-01-01", "information"): 1,
        ("2025-01-01", "praise"): 1,
        ("2025-01-01", "procedures"): 1,
        ("2025-02-01", "praise"): 2,
    }
    one_topic = trends(client, seeded["a"], granularity="month", topic="delays")
    assert by_period(one_topic) == {"2025-01-01": (3, 3, 0, 0)}
    assert one_topic["unit"] == "complaints"


def test_filters_combine(client: TestClient, seeded: dict[str, str]) -> None:
    a = seeded["a"]
    assert trends(client, a, language="en")["totals"]["count"] == 2
    assert trends(client, a, channel="phone")["totals"]["count"] == 1
    assert trends(client, a, sentiment="negative")["totals"]["count"] == 4
    assert trends(client, a, sentiment="negative,positive")["totals"]["count"] == 7
    assert trends(client, a, service=["health", "tax"])["totals"]["count"] == 7
    ranged = trends(client, a, **{"from": "2025-01-06", "to": "2025-01-31"})
    assert ranged["totals"]["count"] == 4
    # Two dimensions at once are answered by the detail rollups, whatever the store.
    two = trends(client, a, granularity="month", group_by="service,sentiment", channel="web")
    assert two["source"] == "rollups"
    assert {
        (p["group"]["service"], p["group"]["sentiment"]): p["count"]
        for p in two["series"]
        if p["period"] == "2025-01-01"
    } == {
        ("health", "negative"): 2,
        ("health", "positive"): 1,
        ("tax", "neutral"): 1,
        (None, "negative"): 1,
    }


def test_source_follows_the_store(client: TestClient, seeded: dict[str, str], store: str) -> None:
    a = seeded["a"]
    expected = "cube:" if store == "cube" else "rollups"
    assert trends(client, a)["source"] == expected
    assert trends(client, a, group_by="region")["source"] == (
        "cube:region" if store == "cube" else "rollups"
    )


def test_etag_gives_304_until_the_data_changes(client: TestClient, seeded: dict[str, str]) -> None:
    a = seeded["a"]
    first = client.get("/v1/trends", params={"granularity": "month"}, headers=auth(a))
    etag = first.headers["ETag"]
    assert "private" in first.headers["Cache-Control"]
    again = client.get(
        "/v1/trends", params={"granularity": "month"}, headers={**auth(a), "If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b""
    post_and_wait(client, a, [complaint(100, received=date(2025, 2, 3), prefix="late")])
    changed = client.get(
        "/v1/trends", params={"granularity": "month"}, headers={**auth(a), "If-None-Match": etag}
    )
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.json()["totals"]["count"] == 9


def test_tenant_isolation(client: TestClient, seeded: dict[str, str]) -> None:
    assert trends(client, seeded["dash_a"])["totals"]["count"] == 8
    assert trends(client, seeded["b"])["totals"]["count"] == 5
    forbidden = client.get(
        "/v1/trends", params={"tenant": "ministry-b"}, headers=auth(seeded["dash_a"])
    )
    assert forbidden.status_code == 403
    both = trends(client, seeded["analyst"], group_by="tenant")
    assert {g["group"]["tenant"]: g["count"] for g in both["groups"]} == {
        "ministry-a": 8,
        "ministry-b": 5,
    }
    assert trends(client, seeded["analyst"], tenant="ministry-b")["totals"]["count"] == 5
    missing = client.get("/v1/trends", params={"tenant": "nobody"}, headers=auth(seeded["analyst"]))
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "topic,colour"}, "group_by"),
        ({"group_by": "topic,topic"}, "group_by"),
        ({"granularity": "year"}, "granularity"),
        ({"from": "2025-13-01"}, "from"),
        ({"from": "2025-02-01", "to": "2025-01-01"}, "from"),
        ({"sentiment": "angry"}, "sentiment"),
        ({"topic": "delays,fees"}, "topic"),
        ({"topic": "*"}, "topic"),
    ],
)
def test_invalid_parameters_get_clear_422s(
    client: TestClient, seeded: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = client.get("/v1/trends", params=params, headers=auth(seeded["a"]))
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(field in e["loc"] for e in errors), errors
    assert all(e["msg"] for e in errors)


def test_drill_down_lists_filtered_redacted_complaints(
    client: TestClient, seeded: dict[str, str]
) -> None:
    a = seeded["a"]
    page = client.get(
        "/v1/complaints", params={"topic": "delays", "from": "2025-01-01"}, headers=auth(a)
    ).json()
    assert {item["external_id"] for item in page["items"]} == {"r-0", "r-1", "r-4"}
    assert all("#t:delays" in item["text"] for item in page["items"])
    received = [item["received_at"] for item in page["items"]]
    assert received == sorted(received, reverse=True)

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/v1/complaints", params=params, headers=auth(a)).json()
        seen.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 8

    dashboard = client.get("/v1/complaints", headers=auth(seeded["dash_a"])).json()
    assert len(dashboard["items"]) == 8
    assert all(item["external_id"] is None for item in dashboard["items"])
    only_b = client.get("/v1/complaints", headers=auth(seeded["b"])).json()
    assert {item["external_id"] for item in only_b["items"]} == {f"b-{i}" for i in range(5)}
    bad = client.get("/v1/complaints", params={"cursor": "%%%"}, headers=auth(a))
    assert bad.status_code == 422


def test_drill_down_hides_personal_data(client: TestClient, seeded: dict[str, str]) -> None:
    a = seeded["a"]
    row = complaint(200, received=date(2025, 3, 3), prefix="pii")
    row["text"] = "Appelez-moi au 06 12 34 56 78 ou karim.benali@example.ma #neg #t:information"
    post_and_wait(client, a, [row])
    items = client.get("/v1/complaints", params={"from": "2025-03-01"}, headers=auth(a)).json()
    text = items["items"][0]["text"]
    assert "06 12 34 56 78" not in text and "karim.benali" not in text


# --- polling: the shared cache of computed answers never hides a change ----------------------

MONTHS = {"granularity": "month"}
JANUARY_DAYS = {"granularity": "day", "from": "2025-01-01", "to": "2025-01-31"}


class Answer(NamedTuple):
    status: int
    etag: str
    body: dict[str, Any]  # empty for a 304


def poll(client: TestClient, key: str, params: dict[str, str], etag: str = "") -> Answer:
    headers = {**auth(key), **({"If-None-Match": etag} if etag else {})}
    response = client.get("/v1/trends", params=params, headers=headers)
    assert response.status_code in (200, 304), response.text
    body = response.json() if response.status_code == 200 else {}
    return Answer(response.status_code, response.headers["ETag"], body)


def test_the_poll_after_a_batch_completes_sees_it_and_unchanged_answers_get_304(
    client: TestClient, seeded: dict[str, str], settings: Settings
) -> None:
    """Answers are cached for up to `trends_cache_seconds` (30 s here), but keyed by the
    tenant's data revision: the first poll after the batch is done already counts it."""
    assert settings.trends_cache_seconds >= 30
    dashboard = seeded["dash_a"]
    months, january = poll(client, dashboard, MONTHS), poll(client, dashboard, JANUARY_DAYS)
    assert poll(client, dashboard, MONTHS, months.etag).status == 304
    late = complaint(100, sentiment="pos", topics=["praise"], received=date(2025, 2, 3))
    post_and_wait(client, seeded["a"], [{**late, "id": "late-100"}])

    changed = poll(client, dashboard, MONTHS, months.etag)
    assert changed.status == 200 and changed.etag != months.etag
    assert by_period(changed.body)["2025-02-01"] == (3, 0, 0, 3)
    assert changed.body["totals"]["count"] == 9
    assert poll(client, dashboard, MONTHS, changed.etag).status == 304
    # January's answer did not change, though the tenant's data did: still a 304.
    assert poll(client, dashboard, JANUARY_DAYS, january.etag).status == 304


def test_the_poll_after_a_purge_sees_it(
    client: TestClient, seeded: dict[str, str], settings: Settings
) -> None:
    """A purge recounts the rollups and the cube: it moves the revision on too."""
    dashboard = seeded["dash_a"]
    before = poll(client, dashboard, MONTHS)
    assert before.body["totals"]["count"] == 8
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            tenant = get_tenant_by_name(session, name="ministry-a")
            assert tenant is not None
            purged = purge_complaints(
                session, received_before=datetime(2025, 1, 6, tzinfo=UTC), tenant_id=tenant.id
            )
    finally:
        engine.dispose()
    assert purged.complaints == 2  # both received on 5 January (UTC)
    after = poll(client, dashboard, MONTHS, before.etag)
    assert after.status == 200
    assert by_period(after.body)["2025-01-01"] == (4, 2, 1, 1)
    assert after.body["totals"]["count"] == 6


def test_a_change_the_revision_misses_shows_within_the_cache_bound(
    database_url: str, make_settings: Callable[..., Settings], make_key: KeyFactory
) -> None:
    """`trends_cache_seconds` bounds staleness whatever changes the counts: here an operator's
    SQL on the cube, which moves no revision. Until then polls share the cached answer."""
    bound = 3.0
    settings = make_settings(database_url, trends_cache_seconds=bound)
    migrate(database_url)
    key = make_key("ministry", "ministry-a")
    with TestClient(create_app(settings)) as client:
        post_and_wait(client, key, A_ROWS[:3])
        assert poll(client, key, MONTHS).body["totals"]["count"] == 3
        engine = make_engine(database_url)
        try:
            with session_scope(make_session_factory(engine)) as session:
                session.execute(
                    update(TrendCube)
                    .where(
                        TrendCube.level == "month:",
                        TrendCube.value == NO_DIMENSION,
                        TrendCube.topic == ALL_TOPICS,
                    )
                    .values(count=TrendCube.count + 5, negative=TrendCube.negative + 5)
                )
        finally:
            engine.dispose()
        changed_at = time.monotonic()
        first = poll(client, key, MONTHS).body["totals"]["count"]
        assert first == 3 or time.monotonic() - changed_at > bound  # the cached answer
        while (count := poll(client, key, MONTHS).body["totals"]["count"]) != 8:
            assert count == 3
            assert time.monotonic() - changed_at < bound + 2.0, "stale past the bound"
            time.sleep(0.1)
