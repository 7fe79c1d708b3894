"""The FastAPI application: wiring only; each domain brings its own router."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from service.alerts.router import router as alerts_router
from service.analysis.router import router as analysis_router
from service.api.context import AppContext
from service.audit.router import router as audit_router
from service.batches.router import router as batches_router
from service.complaints.list_router import router as complaint_list_router
from service.complaints.router import router as complaints_router
from service.core.config import JobRunnerKind, Settings, get_settings
from service.core.db import make_engine, make_session_factory
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
    if settings.auto_migrate and settings.is_sqlite:
        upgrade(context.engine)
    check_schema(context.engine)


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
        prepare_database(settings, context)
        context.swap_pipeline(load_pipeline(settings, context.registry))
        app.state.context = context
        if start_runner:
            context.runner = make_runner(context)
            context.runner.start()
        log.info("sawt ready: models %s", context.pipeline.model_version)
        try:
            yield
        finally:
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
    return app
