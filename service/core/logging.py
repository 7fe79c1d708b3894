"""Structured logs: one JSON object per line, tagged with the request and batch being worked on.

The ids travel in context variables, so every log line written while serving a request (or
processing a chunk, in a worker) carries them without being passed around. FastAPI runs sync
endpoints in a thread pool that copies the context, so the ids follow there too.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str | None] = ContextVar("sawt_request_id", default=None)
batch_id_var: ContextVar[str | None] = ContextVar("sawt_batch_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_HANDLER_NAME = "sawt"
_IDS = ("request_id", "batch_id")


class ContextFilter(logging.Filter):
    """Copies the current request and batch ids onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "batch_id", None) is None:
            record.batch_id = batch_id_var.get()
        return True


def exception_summary(exc_info: Any) -> tuple[str, str]:
    """The exception's type and stack, never its message: that may quote a citizen's text."""
    exc_type, _exc, tb = exc_info
    return exc_type.__name__, "".join(traceback.format_tb(tb))[-4000:]


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", "request_id", "batch_id", ...extra}` per line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _IDS:
            value = getattr(record, key, None)
            if value is not None:
                payload[key] = value
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in _IDS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            payload["exc_type"], payload["stack"] = exception_summary(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """One line per record; an exception adds its type and stack, never its message.

    `logging.Formatter` would print `str(exc)` (and reuse `record.exc_text` that another handler
    may already have filled with it), so the exception is taken off the record while formatting.
    """

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(batch_id)s] %(message)s"
        )

    def format(self, record: logging.LogRecord) -> str:
        exc_info, exc_text = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text = exc_info, exc_text
        if exc_info and exc_info[0] is not None:
            exc_type, stack = exception_summary(exc_info)
            line += f"\nTraceback (message withheld):\n{stack}{exc_type}"
        return line


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Install one stderr handler on the root logger (idempotent: replaces its own handler)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "kombu"):
        logger = logging.getLogger(name)
        # Let them reach our handler once, formatted like everything else.
        for own in list(logger.handlers):
            logger.removeHandler(own)
        logger.propagate = True


@contextmanager
def bind_batch(batch_id: str | None) -> Iterator[None]:
    """Tag every log line written inside the block with this batch id."""
    token = batch_id_var.set(batch_id)
    try:
        yield
    finally:
        batch_id_var.reset(token)


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class RequestContextMiddleware:
    """Pure ASGI (no per-request task hop): request id in and out, one access log line, metrics.

    A client's `X-Request-ID` is kept when it looks sane, else a new one is made, so a ministry
    can quote it when it reports a problem.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.access = logging.getLogger("sawt.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                supplied = value.decode("latin-1")
                break
        request_id = (
            supplied
            if supplied and len(supplied) <= 64 and supplied.replace("-", "").isalnum()
            else uuid.uuid4().hex
        )
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_code = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The id stays bound: the error handler outside logs this request's failure with it.
            self._record(scope, status_code, started)
            raise
        self._record(scope, status_code, started)
        request_id_var.reset(token)

    def _record(self, scope: Scope, status_code: int, started: float) -> None:
        from service.ops import metrics

        elapsed = time.perf_counter() - started
        method = str(scope.get("method", "?"))
        route = _route_of(scope)
        metrics.observe_request(method, route, status_code, elapsed)
        if self.access.isEnabledFor(logging.INFO):
            self.access.info(
                "%s %s %d",
                method,
                route,
                status_code,
                extra={
                    "method": method,
                    "path": scope.get("path"),
                    "status": status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
