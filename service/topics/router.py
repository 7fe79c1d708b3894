"""GET/POST/DELETE /v1/topics: the taxonomy plus each tenant's own topics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool

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
from service.topics import service
from service.topics.schemas import CustomTopicCreate, TopicList, TopicPublic

router = APIRouter(prefix="/v1/topics", tags=["topics"])
TENANT_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "A ministry or dashboard key named another tenant"},
    404: {"description": "No tenant of that name"},
}


def _tenant_id(session: SessionDep, principal: Principal, tenant: str | None) -> int | None:
    """The same rule as every read route: own tenant only (403 for another), or any by name."""
    tenant_ids, _name = resolve_tenant(session, principal, tenant)
    return tenant_ids[0] if tenant_ids else None


def _public(topic: service.CustomTopic) -> TopicPublic:
    return TopicPublic(
        id=topic.topic_id,
        name=topic.name,
        source="custom",
        description=topic.description,
        examples=len(topic.examples),
        threshold=round(topic.threshold, 4),
        created_at=topic.created_at,
    )


@router.get(
    "",
    response_model=TopicList,
    responses=TENANT_ERRORS,
    summary="The taxonomy and the tenant's own topics",
)
def list_topics(
    principal: PrincipalDep,
    session: SessionDep,
    pipeline: PipelineDep,
    tenant: Annotated[str | None, Query(description="Analysts/admins: a tenant's topics")] = None,
) -> TopicList:
    taxonomy = [
        TopicPublic(id=label, name=label.replace("_", " "), source="taxonomy")
        for label in pipeline.topic_model.labels_
    ]
    tenant_id = _tenant_id(session, principal, tenant)
    custom = service.list_custom_topics(session, tenant_id=tenant_id) if tenant_id else []
    return TopicList(topics=taxonomy + [_public(t) for t in custom])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TopicPublic,
    summary="Add a topic from a name, a description and a handful of examples",
    description=(
        "Scored on complaints analysed from now on, by similarity to the examples' embeddings "
        "(threshold calibrated against the project's seed set); nothing is retrained."
    ),
    responses={
        **TENANT_ERRORS,
        409: {"description": "The id exists"},
        503: {"description": "No encoder"},
    },
)
async def create_topic(
    body: CustomTopicCreate,
    principal: WriterDep,
    session: SessionDep,
    pipeline: PipelineDep,
    context: ContextDep,
    tenant: Annotated[str | None, Query(description="Admin only: the tenant")] = None,
) -> TopicPublic:
    tenant_id = _tenant_id(session, principal, tenant)
    if tenant_id is None:
        raise invalid("tenant", "an admin must name the tenant: ?tenant=NAME")
    try:
        topic = await run_in_threadpool(
            service.create_custom_topic,
            session,
            tenant_id=tenant_id,
            body=body,
            pipeline=pipeline,
            settings=context.settings,
        )
    except service.TopicConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except service.EncoderUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    return _public(topic)


@router.delete(
    "/{topic_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**TENANT_ERRORS, 404: {"description": "No such custom topic for this tenant"}},
)
def delete_topic(
    topic_id: str,
    principal: WriterDep,
    session: SessionDep,
    tenant: Annotated[str | None, Query(description="Admin only: the tenant")] = None,
) -> Response:
    tenant_id = _tenant_id(session, principal, tenant)
    if tenant_id is None or not service.delete_custom_topic(
        session, tenant_id=tenant_id, topic_id=topic_id
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"custom topic '{topic_id}' not found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
