"""`/dashboard`: the page, its script and styles, its labels, and plotly.js served from the
installed `plotly` package (no CDN: nothing outside the machine is reachable). The page itself
holds no data: it asks for an API key and calls `/v1/trends`, `/v1/alerts`, `/v1/complaints`."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import plotly
from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, RedirectResponse, Response

from service.dashboard.i18n import LANGS, bundle
from service.dashboard.security import page_headers

router = APIRouter(tags=["dashboard"], include_in_schema=False)

STATIC = Path(__file__).parent / "static"
FILES = {"app.js": "text/javascript", "style.css": "text/css"}
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _headers(max_age: int = 300) -> dict[str, str]:
    return {**page_headers(), "Cache-Control": f"public, max-age={max_age}"}


# Bundled libraries (maplibre) add their own <style> unless an element with its id exists.
_STYLE_GUARD = re.compile(
    r'if\(!document\.getElementById\("([\w-]+)"\)\)\{var \w+=document\.createElement\("style"\)'
)


@lru_cache(maxsize=1)
def page_html() -> bytes:
    """index.html with an empty placeholder for each style plotly.js would inject inline."""
    try:
        ids = _STYLE_GUARD.findall(PLOTLY_JS.read_text(encoding="utf-8"))
    except OSError:
        ids = []
    guards = "".join(f'<meta id="{i}" name="sawt-style-guard">' for i in dict.fromkeys(ids))
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    return html.replace("<!-- style-guards -->", guards).encode()


@router.get("/dashboard")
def dashboard_page() -> Response:
    return Response(page_html(), media_type="text/html; charset=utf-8", headers=_headers(60))


@router.get("/dashboard/")
def dashboard_slash() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=status.HTTP_308_PERMANENT_REDIRECT)


@router.get("/dashboard/static/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    if not PLOTLY_JS.is_file():
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "plotly.min.js missing from the plotly package"
        )
    return FileResponse(
        PLOTLY_JS, media_type="text/javascript; charset=utf-8", headers=_headers(86_400)
    )


@router.get("/dashboard/static/{name}")
def static_file(name: str) -> FileResponse:
    media_type = FILES.get(name)
    if media_type is None:  # a fixed list: no path ever reaches the filesystem unchecked
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such dashboard file")
    return FileResponse(
        STATIC / name, media_type=f"{media_type}; charset=utf-8", headers=_headers()
    )


# plotly.js injects its stylesheet into a <style> element, which `style-src 'self'` forbids; it
# skips that when the page holds an element `#plotly.js-style-global.no-inline-styles`. The page
# links this stylesheet instead, read from the same plotly.min.js so both always match.
_RULE = re.compile(
    r"""(?:"([^"]*)"|([A-Za-z_$][\w$]*))\s*:\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
)
ESSENTIAL_PLOTLY_CSS = """
.js-plotly-plot .plotly, .js-plotly-plot .plotly div { direction: ltr; margin: 0; padding: 0; }
.js-plotly-plot .plotly .main-svg { position: absolute; top: 0; left: 0; pointer-events: none; }
.js-plotly-plot .plotly .main-svg .draglayer { pointer-events: all; }
.js-plotly-plot .plotly .crisp { shape-rendering: crispEdges; }
.js-plotly-plot .plotly .user-select-none { user-select: none; }
.js-plotly-plot .plotly .cursor-pointer { cursor: pointer; }
"""


def _object_at(source: str, start: int) -> str:
    """The JS object literal starting at `start` (braces inside strings are skipped)."""
    depth, quote, i = 0, "", start
    while i < len(source):
        char = source[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return source[start : i + 1]
        i += 1
    raise ValueError("unterminated object")


@lru_cache(maxsize=1)
def plotly_css() -> bytes:
    try:
        source = PLOTLY_JS.read_text(encoding="utf-8")
        body = _object_at(source, source.index('{"X,X div"'))
    except (OSError, ValueError):
        return ESSENTIAL_PLOTLY_CSS.encode()
    rules = []
    for match in _RULE.finditer(body):
        key, value = match.group(1) or match.group(2), match.group(3)[1:-1]
        selector = re.sub("^,", " ,", key)
        selector = selector.replace("X", ".js-plotly-plot .plotly").replace("Y", ".plotly-notifier")
        rules.append(f"{selector} {{{value}}}")
    return ("\n".join(rules) or ESSENTIAL_PLOTLY_CSS).encode()


@router.get("/dashboard/static/vendor/plotly.css")
def plotly_stylesheet() -> Response:
    return Response(plotly_css(), media_type="text/css; charset=utf-8", headers=_headers(86_400))


@lru_cache(maxsize=1)
def _labels() -> bytes:
    return json.dumps({lang: bundle(lang) for lang in LANGS}, ensure_ascii=False).encode()


@router.get("/dashboard/i18n.json")
def labels() -> Response:
    return Response(_labels(), media_type="application/json", headers=_headers())
