"""Liveness, readiness and model administration."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from models.registry import ArtifactError
from service.api.deps import AdminDep, ContextDep, PrincipalDep
from service.core.loading import load_pipeline

router = APIRouter(tags=["operations"])


class ModelsPublic(BaseModel):
    model_version: str
    versions: dict[str, str]


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: models loaded and database reachable",
    responses={503: {"description": "Not ready; `checks` says what is missing"}},
)
def readyz(context: ContextDep) -> JSONResponse:
    checks: dict[str, Any] = {"models": context.models_loaded}
    error: str | None = None
    try:
        with context.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        error = type(exc).__name__
    if error is None and not context.database_ready.is_set():
        # Reachable again, but the background check has not run (or the schema is refused).
        error = context.database_error or "NotCheckedYet"
    checks["database"] = error is None
    if error is not None:
        checks["database_error"] = error
    ready = bool(checks["models"] and checks["database"])
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


@router.get("/v1/models", response_model=ModelsPublic, tags=["models"], summary="Served models")
def served_models(_principal: PrincipalDep, context: ContextDep) -> ModelsPublic:
    pipeline = context.pipeline
    return ModelsPublic(model_version=pipeline.model_version, versions=pipeline.versions)


@router.post(
    "/v1/models/reload",
    response_model=ModelsPublic,
    tags=["models"],
    summary="Load the promoted models and swap them in without dropping requests (admin)",
    responses={409: {"description": "The promoted artifact is refused; the old one stays served"}},
)
async def reload_models(_principal: AdminDep, context: ContextDep) -> ModelsPublic:
    try:
        pipeline = await run_in_threadpool(load_pipeline, context.settings, context.registry)
    except ArtifactError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"reload refused: {exc}") from exc
    context.swap_pipeline(pipeline)
    return ModelsPublic(model_version=pipeline.model_version, versions=pipeline.versions)
