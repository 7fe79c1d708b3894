"""Recording and listing audit events.

Who is recorded: analysts and admins, the roles that read across tenants. A ministry (or
dashboard) key reading its own tenant's complaints is the data owner at work and is not
recorded; its access is already confined to its tenant by `tenant_scope`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit.models import AuditEvent
from service.tenants.models import Role
from service.tenants.service import Principal

AUDITED_ROLES = (Role.analyst, Role.admin)


def record_read(
    session: Session,
    principal: Principal,
    action: str,
    resource: str,
    *,
    tenant_id: int | None = None,
) -> None:
    """Commits at once: a read that was answered must leave its trace even if nothing else does."""
    if principal.role not in AUDITED_ROLES:
        return
    session.add(
        AuditEvent(
            key_id=principal.key_id,
            role=principal.role.value,
            tenant_id=tenant_id,
            action=action,
            resource=resource[:300],
        )
    )
    session.commit()


def list_events(
    session: Session, *, limit: int, before_id: int | None = None, key_id: int | None = None
) -> list[AuditEvent]:
    """Newest first; page with `before_id` = the last id seen."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if key_id is not None:
        query = query.where(AuditEvent.key_id == key_id)
    return list(session.scalars(query))
