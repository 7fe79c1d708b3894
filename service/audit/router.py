"""`GET /v1/audit`: who read which complaints (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import AdminDep, SessionDep
from service.audit.service import list_events

router = APIRouter(prefix="/v1/audit", tags=["audit"])
MAX_ID = 2**31 - 1  # INTEGER columns: larger ids cannot exist, and would overflow the driver


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    key_id: int
    role: str
    tenant_id: int | None = Field(description="Tenant of what was read; null: several or all")
    action: str
    resource: str
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditEventPublic]
    next_before_id: int | None = Field(description="Pass as `before_id` for older events")


@router.get("", response_model=AuditPage, summary="Reads of complaints by analysts and admins")
def get_audit(
    _principal: AdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size")] = 100,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Events older than this id")
    ] = None,
    key_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only this key's reads")
    ] = None,
) -> AuditPage:
    events = list_events(session, limit=limit, before_id=before_id, key_id=key_id)
    return AuditPage(
        items=[AuditEventPublic.model_validate(e) for e in events],
        next_before_id=events[-1].id if len(events) == limit else None,
    )
