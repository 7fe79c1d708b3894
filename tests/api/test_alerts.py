"""Alerts: the statistics on their own, then `GET /v1/alerts` on planted spikes and flat data."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.alerts.stats import bonferroni_threshold, sentiment_drop_test, volume_spike_test
from tests.api.readside import complaint, post_and_wait, use_stub_pipeline
from tests.conftest import KeyFactory, auth

# --- the statistics ------------------------------------------------------------------------


def poisson_upper_tail(x: int, lam: float) -> float:
    return 1 - sum(math.exp(-lam) * lam**k / math.factorial(k) for k in range(x))


def test_flat_history_uses_poisson_and_matches_its_tail() -> None:
    test = volume_spike_test(14, [6, 6, 6, 6, 6, 6, 6, 6])
    assert test.distribution == "poisson" and test.expected == 6
    assert test.p_value == pytest.approx(poisson_upper_tail(14, 6.0), rel=1e-9)
    assert volume_spike_test(6, [6] * 8).p_value > 0.4


def test_over_dispersed_history_is_less_alarmed_than_poisson() -> None:
    history = [2, 30, 5, 25, 3, 28, 4, 27]
    test = volume_spike_test(35, history)
    assert test.distribution == "negative_binomial"
    assert test.p_value > 0.05  # such swings are normal for this topic
    assert poisson_upper_tail(35, sum(history) / 8) < 1e-4  # Poisson would cry wolf


def test_a_topic_rising_from_nothing_is_a_spike() -> None:
    assert volume_spike_test(8, [0, 0, 0, 0]).p_value < 1e-5
    assert volume_spike_test(0, [0, 0, 0]).p_value == 1.0


def test_false_alarm_rate_under_the_null_stays_near_the_level() -> None:
    rng = np.random.default_rng(7)
    alpha, trials = 0.01, 3000
    means = rng.uniform(3, 60, trials)
    alarms = 0
    for mean in means:
        history = rng.poisson(mean, 8).tolist()
        observed = int(rng.poisson(mean))
        alarms += volume_spike_test(observed, history).p_value < alpha
    assert alarms / trials < 3 * alpha


def test_two_proportion_z_test_by_hand() -> None:
    drop = sentiment_drop_test(50, 100, 200, 800)
    pooled = 250 / 900
    z = (0.5 - 0.25) / math.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 800))
    assert drop.z == pytest.approx(z, abs=1e-3)
    assert drop.p_value == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-6)
    assert (drop.observed_share, drop.expected_share) == (0.5, 0.25)
    assert sentiment_drop_test(25, 100, 200, 800).p_value == pytest.approx(0.5)
    assert sentiment_drop_test(10, 100, 200, 800).p_value > 0.9  # improvement is no alarm
    assert sentiment_drop_test(0, 10, 0, 80).p_value == 1.0


def test_bonferroni() -> None:
    assert bonferroni_threshold(0.01, 20) == pytest.approx(0.0005)
    assert bonferroni_threshold(0.01, 0) == 0.01
    with pytest.raises(ValueError, match="history"):
        volume_spike_test(3, [1])


# --- through HTTP --------------------------------------------------------------------------

TARGET = date(2025, 3, 3)  # a Monday
WEEKS = [TARGET - timedelta(weeks=k) for k in range(8, 0, -1)]
DELAYS_HISTORY = [5, 7, 6, 6, 5, 7, 6, 6]
FEES_HISTORY = [6, 5, 6, 7, 6, 5, 6, 6]


@pytest.fixture(autouse=True)
def _stub(monkeypatch: pytest.MonkeyPatch) -> None:
    use_stub_pipeline(monkeypatch)


def weekly_rows(*, spike: bool) -> list[dict[str, Any]]:
    """8 weeks of steady `delays` (half negative) and `fees` (mostly neutral); then a week that
    either repeats them or plants a delays spike and a fees sentiment drop."""
    rows: list[dict[str, Any]] = []
    i = 0

    def add(n: int, topic: str, day: date, negatives: int) -> None:
        nonlocal i
        for k in range(n):
            sentiment = "neg" if k < negatives else "neu"
            rows.append(complaint(i, sentiment=sentiment, topics=[topic], received=day))
            i += 1

    for week, delays, fees in zip(WEEKS, DELAYS_HISTORY, FEES_HISTORY, strict=True):
        add(delays, "delays", week + timedelta(days=2), negatives=delays // 2)
        add(fees, "fees", week + timedelta(days=3), negatives=1)
    if spike:
        add(30, "delays", TARGET + timedelta(days=1), negatives=15)
        add(6, "fees", TARGET + timedelta(days=2), negatives=6)
    else:
        add(6, "delays", TARGET + timedelta(days=1), negatives=3)
        add(6, "fees", TARGET + timedelta(days=2), negatives=1)
    return rows


def alerts(client: TestClient, key: str, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/alerts", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_planted_spike_and_sentiment_drop_fire_with_evidence(
    client: TestClient, make_key: KeyFactory
) -> None:
    key = make_key("ministry", "ministry-a")
    post_and_wait(client, key, weekly_rows(spike=True))

    body = alerts(client, key)  # default period: the one holding the latest data
    assert body["period"] == TARGET.isoformat() and body["granularity"] == "week"
    assert "negative-binomial" in body["methods"]["volume_spike"]
    assert "two-proportion" in body["methods"]["sentiment_drop"]
    fired = {(a["kind"], a["topic"]) for a in body["alerts"]}
    assert ("volume_spike", "delays") in fired
    assert ("sentiment_drop", "fees") in fired
    assert ("volume_spike", "fees") not in fired and ("sentiment_drop", "delays") not in fired

    spike = next(
        a for a in body["alerts"] if a["kind"] == "volume_spike" and a["topic"] == "delays"
    )
    assert spike["observed"] == 30 and spike["expected"] == pytest.approx(6.0)
    assert spike["p_value"] < body["per_test_threshold"]
    assert [h["count"] for h in spike["evidence"]["history"]] == DELAYS_HISTORY
    samples = spike["evidence"]["samples"]
    assert 1 <= len(samples) <= 5
    assert all("#t:delays" in s["text"] for s in samples)
    assert all(s["received_at"].startswith("2025-03-04") for s in samples)

    drop = next(a for a in body["alerts"] if a["kind"] == "sentiment_drop")
    assert drop["observed"] == 1.0
    assert drop["expected"] == pytest.approx(8 / sum(FEES_HISTORY), abs=1e-4)
    assert drop["z"] > 3
    assert all(s["sentiment"] == "negative" for s in drop["evidence"]["samples"])


def test_flat_history_raises_no_alert(client: TestClient, make_key: KeyFactory) -> None:
    key = make_key("ministry", "ministry-a")
    post_and_wait(client, key, weekly_rows(spike=False))
    body = alerts(client, key, period=TARGET.isoformat())
    assert body["tests_run"] >= 3
    assert body["alerts"] == []


def test_sensitivity_is_tunable_and_tenants_are_isolated(
    client: TestClient, make_key: KeyFactory
) -> None:
    key = make_key("ministry", "ministry-a")
    post_and_wait(client, key, weekly_rows(spike=True))
    assert alerts(client, key, sensitivity=1e-15)["alerts"] == []
    other = make_key("dashboard", "ministry-b")
    assert alerts(client, other)["alerts"] == []
    analyst = alerts(client, make_key("analyst"))
    assert {a["tenant"] for a in analyst["alerts"]} == {"ministry-a"}


def test_new_theme_hook_reads_discovery_output(
    client: TestClient, make_key: KeyFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    discovery = pytest.importorskip("models.discovery")
    key = make_key("ministry", "ministry-a")
    post_and_wait(client, key, weekly_rows(spike=False))
    listed = client.get("/v1/complaints", params={"limit": 3}, headers=auth(key)).json()
    ids = [str(item["id"]) for item in listed["items"]]
    assert not [a for a in alerts(client, key)["alerts"] if a["kind"] == "new_theme"]

    seen = datetime(2025, 3, 4, 12, tzinfo=UTC)

    def theme(theme_id: str, *, is_new: bool, keywords: list[str]) -> Any:
        return discovery.Theme(
            theme_id=theme_id, keywords=keywords, keyword_scores=[0.5] * len(keywords),
            size=3, centroid=[0.0] * 4, representatives=[0, 1, 2], representative_ids=ids,
            representative_texts=["raw text, call 0612345678"] * 3, suggested_topic="new",
            is_new=is_new, first_seen=seen, last_seen=seen,
        )  # fmt: skip

    themes = tmp_path / "out.themes.json"
    discovery.ThemeSet(
        created_at=seen, n_documents=30, n_outliers=2, next_id=9, reference=[0.0] * 4,
        themes=[
            theme("t8", is_new=True, keywords=["bourse", "minha", "retard"]),
            theme("t2", is_new=False, keywords=["old"]),
        ],
    ).save(themes)  # fmt: skip
    monkeypatch.setenv("SAWT_THEMES_PATH", str(themes))

    new = [a for a in alerts(client, key)["alerts"] if a["kind"] == "new_theme"]
    assert [(a["topic"], a["observed"], a["period"]) for a in new] == [
        ("bourse · minha · retard", 3, TARGET.isoformat())
    ]
    evidence = new[0]["evidence"]
    assert (evidence["theme_id"], evidence["suggested_topic"]) == ("t8", "new")
    assert sorted(str(s["id"]) for s in evidence["samples"]) == sorted(ids)
    assert all("0612345678" not in s["text"] for s in evidence["samples"])  # stored text only
    other = make_key("ministry", "ministry-b")
    assert not [a for a in alerts(client, other)["alerts"] if a["kind"] == "new_theme"]
    analyst = alerts(client, make_key("analyst"))["alerts"]
    assert [a["topic"] for a in analyst if a["kind"] == "new_theme"] == ["bourse · minha · retard"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"history": 2}, "history"),
        ({"sensitivity": 0}, "sensitivity"),
        ({"from": "2025-01-01"}, "from"),
        ({"period": "March"}, "period"),
        ({"granularity": "year"}, "granularity"),
    ],
)
def test_invalid_alert_parameters(
    client: TestClient, make_key: KeyFactory, params: dict[str, Any], field: str
) -> None:
    response = client.get("/v1/alerts", params=params, headers=auth(make_key()))
    assert response.status_code == 422
    assert any(field in e["loc"] for e in response.json()["detail"])


def test_new_themes_from_stored_discovery_runs(
    client: TestClient, make_key: KeyFactory, settings: Any
) -> None:
    themes_models = pytest.importorskip("service.themes.models")
    from service.core.db import make_engine, make_session_factory, session_scope
    from service.tenants.service import get_tenant_by_name

    key = make_key("ministry", "ministry-a")
    post_and_wait(client, key, weekly_rows(spike=False))
    ids = [
        str(item["id"])
        for item in client.get("/v1/complaints", params={"limit": 2}, headers=auth(key)).json()[
            "items"
        ]
    ]
    engine = make_engine(settings.database_url)
    try:
        themes_models.ThemeRun.__table__.create(engine, checkfirst=True)
        with session_scope(make_session_factory(engine)) as session:
            tenant = get_tenant_by_name(session, name="ministry-a")
            assert tenant is not None
            session.add(
                themes_models.ThemeRun(
                    tenant_id=tenant.id,
                    window_start=datetime(2025, 1, 1, tzinfo=UTC),
                    window_end=datetime(2025, 3, 9, tzinfo=UTC),
                    n_documents=120,
                    themes={
                        "themes": [
                            {"theme_id": "t3", "keywords": ["guichet", "fermé"], "size": 2,
                             "is_new": True, "first_seen": "2025-03-05T10:00:00+00:00",
                             "representative_ids": ids, "suggested_topic": "access"},
                        ]
                    },
                )
            )  # fmt: skip
    finally:
        engine.dispose()
    new = [a for a in alerts(client, key)["alerts"] if a["kind"] == "new_theme"]
    assert [(a["tenant"], a["topic"]) for a in new] == [("ministry-a", "guichet · fermé")]
    assert sorted(str(s["id"]) for s in new[0]["evidence"]["samples"]) == sorted(ids)
    other = make_key("ministry", "ministry-b")
    assert not [a for a in alerts(client, other)["alerts"] if a["kind"] == "new_theme"]
