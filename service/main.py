"""The FastAPI application: wiring only; each domain brings its own router."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from service.alerts.router import router as alerts_router
from service.analysis.router import router as analysis_router
from service.api.context import AppContext
from service.api.deps import install_database_errors
from service.api.openapi import install_error_responses
from service.audit.router import router as audit_router
from service.batches.router import router as batches_router
from service.complaints.list_router import router as complaint_list_router
from service.complaints.router import router as complaints_router
from service.core.config import JobRunnerKind, Settings, get_settings
from service.core.db import (
    RETRY_MAX_DELAY,
    database_unavailable,
    make_engine,
    make_session_factory,
    retry_while_unavailable,
)
from service.core.loading import load_pipeline, make_registry
from service.core.logging import RequestContextMiddleware, configure_logging
from service.core.migrate import check_schema, upgrade
from service.core.security_headers import SecurityHeadersMiddleware
from service.dashboard.router import router as dashboard_router
from service.ops.metrics import router as metrics_router
from service.ops.router import router as ops_router
from service.reports.router import router as reports_router
from service.themes.router import router as themes_router
from service.topics.router import router as topics_router
from service.trends.router import router as trends_router

log = logging.getLogger("sawt")

DESCRIPTION = """
Sawt turns what citizens write about public services into signals managers can steer by.

Authenticate with an API key (`sawt keys create --tenant NAME --role ROLE`) sent as
`Authorization: Bearer <key>` or `X-API-Key: <key>`. Errors answer
`{"detail": ...}`: a message, or `{"message", "errors": [{"row", "field", "message"}]}`.
"""


def make_runner(context: AppContext) -> object:
    settings = context.settings
    if settings.job_runner == JobRunnerKind.celery:
        from service.jobs.celery_runner import CeleryRunner

        return CeleryRunner(settings=settings, session_factory=context.session_factory)
    from service.jobs.runner import InProcessRunner

    return InProcessRunner(
        session_factory=context.session_factory,
        pipeline_provider=lambda: context.pipeline,
        chunk_size=settings.worker_chunk_size,
    )


def prepare_database(settings: Settings, context: AppContext) -> None:
    """Raises `SchemaOutOfDate` for a reachable but un-migrated database (a deployment error:
    the API refuses to start), a connection error when the database is unreachable."""
    if settings.auto_migrate and settings.is_sqlite:
        upgrade(context.engine)
    check_schema(context.engine)


def start_serving(context: AppContext, *, start_runner: bool) -> None:
    """Start the job runner (it re-queues unfinished batches), then accept database requests."""
    if start_runner and context.runner is None:
        runner: Any = make_runner(context)
        runner.start()
        context.runner = runner
    context.database_error = None
    context.database_ready.set()


def wait_for_database(
    settings: Settings, context: AppContext, *, start_runner: bool, stopping: threading.Event
) -> None:
    """The database was unreachable at start: retry with capped exponential backoff until it
    answers, then check the schema and start the runner. Meanwhile /readyz answers 503."""

    def attempt() -> None:
        prepare_database(settings, context)
        start_serving(context, start_runner=start_runner)

    while not stopping.is_set():
        try:
            retry_while_unavailable(attempt, stopping=stopping, what="database check at start")
            return
        except Exception as exc:
            # Reachable now but not usable (e.g. not migrated): say why, keep checking.
            context.database_error = type(exc).__name__
            log.error("database not usable, checking again in %.0fs: %s", RETRY_MAX_DELAY, exc)
            stopping.wait(RETRY_MAX_DELAY)


def create_app(settings: Settings | None = None, *, start_runner: bool = True) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        context = AppContext(
            settings=settings,
            engine=engine,
            session_factory=make_session_factory(engine),
            registry=make_registry(settings),
        )
        database_up = True
        try:
            prepare_database(settings, context)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            database_up, context.database_error = False, type(exc).__name__
        context.swap_pipeline(load_pipeline(settings, context.registry))
        app.state.context = context
        stopping = threading.Event()
        waiter: threading.Thread | None = None
        if database_up:
            try:
                start_serving(context, start_runner=start_runner)
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                database_up, context.database_error = False, type(exc).__name__
        if database_up:
            log.info("sawt ready: models %s", context.pipeline.model_version)
        else:
            log.warning(
                "database unreachable at start: serving as not ready, retrying in the background"
            )
            waiter = threading.Thread(
                target=wait_for_database,
                args=(settings, context),
                kwargs={"start_runner": start_runner, "stopping": stopping},
                name="sawt-database-wait",
                daemon=True,
            )
            waiter.start()
        try:
            yield
        finally:
            stopping.set()
            if waiter is not None:
                waiter.join(timeout=15)
            if context.runner is not None:
                context.runner.stop()
            engine.dispose()

    app = FastAPI(
        title="Sawt",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key"],
        )

    @app.exception_handler(Exception)
    async def unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
        # Never echo the exception: it may quote a citizen's text.
        log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes each error's `input`: it may be a citizen's text.
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    install_database_errors(app)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    for router in (
        ops_router,
        metrics_router,
        batches_router,
        complaint_list_router,
        complaints_router,
        analysis_router,
        topics_router,
        themes_router,
        trends_router,
        alerts_router,
        reports_router,
        dashboard_router,
        audit_router,
    ):
        app.include_router(router)
    install_error_responses(app)
    return app
