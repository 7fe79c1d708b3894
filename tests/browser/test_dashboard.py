"""The dashboard end to end in headless Chromium: log in with a dashboard key, charts drawn
with data (checked on a screenshot too), Arabic right to left, click a theme to read it.

Needs Debian's `chromium` and the `playwright` package (its bundled browsers are not used):
    apt-get install -y chromium && .venv/bin/pip install playwright
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.core.config import Settings
from service.main import create_app
from tests.api.readside import complaint, use_stub_pipeline
from tests.conftest import KeyFactory, migrate

CHROMIUM = os.environ.get("SAWT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="playwright is not installed: .venv/bin/pip install playwright",
    ),
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None and not Path(CHROMIUM).is_file(),
        reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium",
    ),
]

# 60 days of complaints: delays dominate and are mostly negative, praise is positive.
PLAN = [
    ("delays", "neg", 26),
    ("digital_services", "neg", 9),
    ("fees", "neu", 6),
    ("praise", "pos", 5),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def live_server(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, make_settings: Callable[..., Settings]
) -> Iterator[tuple[str, Settings]]:
    import uvicorn

    use_stub_pipeline(monkeypatch)
    settings = make_settings(sqlite_url)
    migrate(settings.database_url)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", settings
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def seed(base: str, key: str) -> dict[str, int]:
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for topic, sentiment, n in PLAN:
        for k in range(n):
            rows.append(
                complaint(
                    len(rows),
                    sentiment=sentiment,
                    topics=[topic],
                    received=today - timedelta(days=(k * 7) % 60),
                    service=["health", "tax", "civil_registry"][k % 3],
                )
            )
        counts[topic] = n
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        batch = http.post("/v1/batches", json={"complaints": rows})
        assert batch.status_code == 202, batch.text
        deadline = time.monotonic() + 120
        while http.get(f"/v1/batches/{batch.json()['id']}").json()["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    return counts


def red_pixels(png: bytes) -> int:
    """Pixels of the 'negative' bar colour (#b42318) in a screenshot."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(
        1
        for r, g, b in image.getdata()
        if abs(r - 0xB4) < 24 and abs(g - 0x23) < 24 and abs(b - 0x18) < 24
    )


def test_dashboard_end_to_end(live_server: tuple[str, Settings], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, settings = live_server
    keys = KeyFactory(settings)
    counts = seed(base, keys("ministry", "ministry-a"))
    dashboard_key = keys("dashboard", "ministry-a")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        statuses: list[int] = []
        page.on("response", lambda r: statuses.append(r.status) if "/v1/trends" in r.url else None)
        page.add_init_script(  # the CSP must hold without exceptions: record any violation
            "window.__csp = []; document.addEventListener('securitypolicyviolation', "
            "e => window.__csp.push([e.violatedDirective, e.sourceFile, e.lineNumber]));"
        )
        try:
            response = page.goto(f"{base}/dashboard")
            assert response is not None and response.ok
            headers = response.headers
            assert "default-src 'self'" in headers["content-security-policy"]
            assert headers["x-frame-options"] == "DENY"
            assert headers["x-content-type-options"] == "nosniff"
            assert page.locator("html").get_attribute("lang") == "fr"

            page.fill("#api-key", dashboard_key)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("body[data-rendered]", timeout=30_000)

            volume_bars = page.locator("#chart-volume .trace.bars .point")
            topic_bars = page.locator("#chart-topics .trace.bars .point path")
            expect(topic_bars).to_have_count(len(PLAN))
            assert volume_bars.count() > 0
            assert page.locator("#kpi-count").inner_text() == str(sum(counts.values()))

            shot = page.locator("#chart-volume").screenshot(path=str(tmp_path / "volume.png"))
            page.screenshot(path=str(tmp_path / "dashboard-fr.png"), full_page=True)
            assert red_pixels(shot) > 500, "the volume chart shows no negative bars"

            # Polling again what it already holds costs a 304 (ETag), and the charts stay.
            rendered = int(page.locator("body").get_attribute("data-rendered") or 0)
            statuses.clear()
            page.select_option("#f-granularity", "month")
            page.select_option("#f-granularity", "week")
            deadline = time.monotonic() + 20  # (no wait_for_function: the CSP forbids eval)
            while int(page.locator("body").get_attribute("data-rendered") or 0) < rendered + 2:
                assert time.monotonic() < deadline, "the dashboard did not redraw"
                page.wait_for_timeout(50)
            assert 304 in statuses, statuses
            expect(topic_bars).to_have_count(len(PLAN))

            page.click("[data-lang=ar]")
            expect(page.locator("html")).to_have_attribute("dir", "rtl")
            expect(page.locator("html")).to_have_attribute("lang", "ar")
            expect(page.locator("#chart-topics")).to_contain_text("التأخير والانتظار")
            page.screenshot(path=str(tmp_path / "dashboard-ar.png"), full_page=True)

            # The widest bar is `delays`: click it in the chart to read its complaints.
            boxes = [topic_bars.nth(i).bounding_box() for i in range(topic_bars.count())]
            widest = max((b for b in boxes if b), key=lambda b: b["width"])
            x, y = widest["x"] + widest["width"] / 2, widest["y"] + widest["height"] / 2
            page.mouse.move(x, y)  # plotly computes hover data on move, then clicks on it
            page.wait_for_timeout(300)
            page.mouse.click(x, y)
            rows = page.locator("#drill-table tbody tr")
            expect(page.locator("#drill")).to_be_visible()
            expect(rows).to_have_count(min(20, counts["delays"]))
            expect(page.locator("#drill-title")).to_contain_text("التأخير والانتظار")
            assert all("#t:delays" in text for text in rows.all_inner_texts())
            page.click("#drill-more")
            expect(rows).to_have_count(counts["delays"])
            assert page.evaluate("window.__csp") == []
        finally:
            browser.close()
    assert not problems, problems
