"""`GET /v1/reports/summary`: numbers against what was posted, languages, HTML page."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.dashboard.i18n import LANGS, TOPICS, UI
from tests.api.readside import TOPICS as TAXONOMY
from tests.api.readside import complaint, post_and_wait, use_stub_pipeline
from tests.conftest import KeyFactory, auth


@pytest.fixture(autouse=True)
def _stub(monkeypatch: pytest.MonkeyPatch) -> None:
    use_stub_pipeline(monkeypatch)


def rows() -> list[dict[str, Any]]:
    """February: 4 delays (neg, health), 2 praise (pos, tax). March: 10 delays (8 neg, 2 neu,
    health), 1 praise (pos, tax), 3 fees (neg, `<b>tax</b>` to test escaping)."""
    spec = [
        (4, "neg", "delays", "health", date(2025, 2, 10)),
        (2, "pos", "praise", "tax", date(2025, 2, 12)),
        (8, "neg", "delays", "health", date(2025, 3, 3)),
        (2, "neu", "delays", "health", date(2025, 3, 4)),
        (1, "pos", "praise", "tax", date(2025, 3, 5)),
        (3, "neg", "fees", "<b>tax</b>", date(2025, 3, 20)),
    ]
    out, i = [], 0
    for n, sentiment, topic, service, day in spec:
        for _ in range(n):
            out.append(
                complaint(i, sentiment=sentiment, topics=[topic], service=service, received=day)
            )
            i += 1
    return out


@pytest.fixture
def key(client: TestClient, make_key: KeyFactory) -> str:
    key = make_key("ministry", "ministry-a")
    post_and_wait(client, key, rows())
    return key


def report(client: TestClient, key: str, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/reports/summary", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def test_report_numbers_match_the_posted_complaints(client: TestClient, key: str) -> None:
    body = report(client, key, period="2025-03")
    assert body["period"]["start"] == "2025-03-01" and body["period"]["end"] == "2025-03-31"
    assert body["period"]["previous_start"] == "2025-02-01"
    assert (body["totals"]["count"], body["previous_totals"]["count"]) == (14, 6)
    assert body["totals"]["negative"] == 11 and body["totals"]["positive"] == 1
    assert body["totals"]["experience_index"] == pytest.approx((1 - 11) / 14, abs=1e-4)

    top = [(t["topic"], t["count"]) for t in body["top_themes"]]
    assert top == [("delays", 10), ("fees", 3), ("praise", 1)]
    delays = body["top_themes"][0]
    assert delays["share_of_complaints"] == pytest.approx(10 / 14, abs=1e-4)
    assert (delays["previous_count"], delays["change"], delays["change_ratio"]) == (4, 6, 1.5)
    assert delays["label"] == "Délais et attente"

    movers = [(t["topic"], t["change"]) for t in body["biggest_movers"]]
    assert movers == [("delays", 6), ("fees", 3), ("praise", -1)]
    fees = next(t for t in body["biggest_movers"] if t["topic"] == "fees")
    assert fees["change_ratio"] is None  # nothing to compare with

    services = {
        s["service"]: (s["count"], s["experience_index"]) for s in body["experience_by_service"]
    }
    assert services == {"health": (10, -0.8), "tax": (1, 1.0), "<b>tax</b>": (3, -1.0)}
    health = next(s for s in body["experience_by_service"] if s["service"] == "health")
    assert health["previous_experience_index"] == -1.0
    assert "negative-binomial" in body["alert_methods"]["volume_spike"]


def test_week_period_and_languages(client: TestClient, key: str) -> None:
    week = report(client, key, period="2025-W10")  # Monday 3 March 2025
    assert week["period"]["start"] == "2025-03-03" and week["period"]["end"] == "2025-03-09"
    assert week["totals"]["count"] == 11
    arabic = report(client, key, period="2025-03", lang="ar")
    assert arabic["dir"] == "rtl" and arabic["lang"] == "ar"
    assert arabic["top_themes"][0]["label"] == "التأخير والانتظار"
    assert arabic["labels"]["top_themes"] == UI["ar"]["top_themes"]
    english = report(client, key, period="2025-03", lang="en")
    assert english["dir"] == "ltr" and english["top_themes"][0]["label"] == "Delays and waiting"


def test_html_page_is_printable_escaped_and_right_to_left_in_arabic(
    client: TestClient, key: str
) -> None:
    response = client.get(
        "/v1/reports/summary",
        params={"period": "2025-03", "lang": "ar", "format": "html"},
        headers=auth(key),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<html lang="ar" dir="rtl">' in html
    assert "التأخير والانتظار" in html and UI["ar"]["experience_by_service"] in html
    assert "&lt;b&gt;tax&lt;/b&gt;" in html and "<b>tax</b>" not in html
    assert "@media print" in html
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<style nonce="{nonce}">' in html
    assert response.headers["X-Frame-Options"] == "DENY"

    negotiated = client.get(
        "/v1/reports/summary",
        params={"period": "2025-03"},
        headers={**auth(key), "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )
    assert negotiated.headers["content-type"].startswith("text/html")
    assert '<html lang="fr" dir="ltr">' in negotiated.text


def test_report_access(client: TestClient, key: str, make_key: KeyFactory) -> None:
    dashboard = make_key("dashboard", "ministry-a")
    assert report(client, dashboard, period="2025-03")["totals"]["count"] == 14
    other = make_key("dashboard", "ministry-b")
    assert report(client, other, period="2025-03")["totals"]["count"] == 0
    response = client.get(
        "/v1/reports/summary", params={"tenant": "ministry-a"}, headers=auth(other)
    )
    assert response.status_code == 403


@pytest.mark.parametrize("period", ["2025-13", "2025-W60", "March", "2025-3"])
def test_bad_periods_are_422(client: TestClient, key: str, period: str) -> None:
    response = client.get("/v1/reports/summary", params={"period": period}, headers=auth(key))
    assert response.status_code == 422
    assert any("period" in e["loc"] for e in response.json()["detail"])


def test_every_language_has_every_label_and_topic() -> None:
    for lang in LANGS:
        assert set(UI[lang]) == set(UI["fr"]), lang
        assert set(TOPICS[lang]) == set(TAXONOMY), lang
        assert all(value.strip() for value in UI[lang].values())
