"""Tenants and API keys: creation, authentication and revocation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.db import utcnow
from service.core.security import generate_key, split_prefix, verify_key
from service.tenants.models import ApiKey, Role, Tenant


class KeyCreationError(ValueError):
    """A key cannot be created as asked; the message says how to fix the call."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved once per request from the API key."""

    key_id: int
    role: Role
    tenant_id: int | None

    def can_read_tenant(self, tenant_id: int) -> bool:
        if self.role in (Role.admin, Role.analyst):
            return True
        return self.role == Role.ministry and self.tenant_id == tenant_id


@dataclass(frozen=True)
class CreatedKey:
    plaintext: str
    key_id: int
    role: Role
    tenant: str | None


def get_or_create_tenant(session: Session, *, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
    return tenant


def get_tenant_by_name(session: Session, *, name: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.name == name))


def create_key(
    session: Session,
    *,
    role: Role,
    pepper: str,
    tenant_name: str | None = None,
    name: str | None = None,
    expires_at: datetime | None = None,
) -> CreatedKey:
    if role in (Role.ministry, Role.dashboard) and not tenant_name:
        raise KeyCreationError(f"a {role.value} key belongs to a tenant: pass --tenant NAME")
    tenant = get_or_create_tenant(session, name=tenant_name) if tenant_name else None
    new = generate_key(pepper)
    key = ApiKey(
        prefix=new.prefix,
        key_hash=new.key_hash,
        role=role.value,
        tenant_id=tenant.id if tenant else None,
        name=name,
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    return CreatedKey(plaintext=new.plaintext, key_id=key.id, role=role, tenant=tenant_name)


def authenticate(session: Session, *, plaintext: str, pepper: str) -> Principal | None:
    prefix = split_prefix(plaintext)
    if prefix is None:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or not verify_key(plaintext, key.key_hash, pepper):
        return None
    now = utcnow()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    return Principal(key_id=key.id, role=Role(key.role), tenant_id=key.tenant_id)


def revoke_key(session: Session, *, prefix: str) -> bool:
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None:
        return False
    key.revoked_at = key.revoked_at or utcnow()
    return True


def list_keys(session: Session) -> list[tuple[ApiKey, str | None]]:
    rows = session.execute(
        select(ApiKey, Tenant.name).outerjoin(Tenant, Tenant.id == ApiKey.tenant_id)
    ).all()
    return [(key, tenant_name) for key, tenant_name in rows]
