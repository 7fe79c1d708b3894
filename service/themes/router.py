"""Emerging themes: run discovery over a tenant's stored embeddings, read the latest themes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from service.api.deps import (
    ContextDep,
    PipelineDep,
    PrincipalDep,
    SessionDep,
    WriterDep,
    invalid,
    resolve_tenant,
)
from service.tenants.service import Principal
from service.themes import service

router = APIRouter(prefix="/v1/themes", tags=["themes"])
TENANT_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "A ministry or dashboard key named another tenant, or has no tenant"},
    404: {"description": "No tenant of that name"},
    422: {"description": "An analyst or admin did not name the tenant"},
}


class ThemeRunPublic(BaseModel):
    run_id: int
    created_at: Any
    window_start: Any
    window_end: Any
    n_documents: int
    themes: list[dict[str, Any]] = Field(
        description="theme_id (stable across runs), keywords, size, suggested_topic, is_new, "
        "representative_ids and redacted representative_texts"
    )
    topics_over_time: list[dict[str, Any]]


def _tenant_id(session: SessionDep, principal: Principal, tenant: str | None) -> int:
    """The same rule as every read route: own tenant only (403 for another), or one by name."""
    tenant_ids, _name = resolve_tenant(session, principal, tenant)
    if not tenant_ids:
        raise invalid("tenant", "name the tenant: ?tenant=NAME")
    return tenant_ids[0]


def _public(run: service.ThemeRun) -> ThemeRunPublic:
    themes = dict(run.themes)
    for theme in themes.get("themes", []):
        theme.pop("centroid", None)
    return ThemeRunPublic(
        run_id=run.id,
        created_at=run.created_at,
        window_start=run.window_start,
        window_end=run.window_end,
        n_documents=run.n_documents,
        themes=themes.get("themes", []),
        topics_over_time=themes.get("topics_over_time", []),
    )


@router.get(
    "",
    response_model=ThemeRunPublic,
    responses={**TENANT_ERRORS, 404: {"description": "No run yet, or no tenant of that name"}},
)
def latest_themes(
    principal: PrincipalDep,
    session: SessionDep,
    tenant: Annotated[str | None, Query(description="Analysts/admins: the tenant")] = None,
) -> ThemeRunPublic:
    run = service.latest_run(session, tenant_id=_tenant_id(session, principal, tenant))
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no discovery run yet for this tenant")
    return _public(run)


@router.post(
    "/discover",
    response_model=ThemeRunPublic,
    summary="Discover themes in the last `days` of stored complaints (embeddings reused)",
    responses={
        **TENANT_ERRORS,
        422: {"description": "Too few analysed complaints in the window, or no tenant named"},
    },
)
async def run_discovery(
    principal: WriterDep,
    session: SessionDep,
    pipeline: PipelineDep,
    context: ContextDep,
    days: Annotated[int, Query(ge=1, le=366)] = 28,
    tenant: Annotated[str | None, Query(description="Admin only: the tenant")] = None,
) -> ThemeRunPublic:
    tenant_id = _tenant_id(session, principal, tenant)
    centroids = None
    if pipeline.encoder is not None:
        centroids = await run_in_threadpool(
            service.seed_topic_centroids,
            pipeline.encoder,
            context.settings.cache_dir / "embeddings",
        )
    try:
        run = await run_in_threadpool(
            service.discover_themes,
            session,
            tenant_id=tenant_id,
            days=days,
            topic_centroids=centroids,
            encoder_version=pipeline.encoder.version if pipeline.encoder is not None else None,
        )
    except service.NotEnoughComplaints as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return _public(run)
