"""FastAPI dependencies: the database session, the caller, the pipeline."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from models.pipeline import AnalysisPipeline
from service.api.context import AppContext
from service.core.config import Settings
from service.core.ratelimit import enforce_rate_limit
from service.tenants.models import Role, Tenant
from service.tenants.service import Principal, authenticate, get_tenant_by_name

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = (
    "database unavailable: the service reconnects by itself; retry in a few seconds "
    "(GET /readyz says when it is back)"
)
RETRY_AFTER = {"Retry-After": "5"}


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_settings_dep(context: ContextDep) -> Settings:
    return context.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_session(context: ContextDep) -> Iterator[Session]:
    if not context.database_ready.is_set():
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, DATABASE_UNAVAILABLE, RETRY_AFTER)
    session = context.session_factory()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def get_pipeline(context: ContextDep) -> AnalysisPipeline:
    if not context.models_loaded:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "models are still loading")
    return context.pipeline


PipelineDep = Annotated[AnalysisPipeline, Depends(get_pipeline)]


def get_principal(
    session: SessionDep,
    context: ContextDep,
    authorization: Annotated[
        str | None, Header(description="`Bearer <API key>`", include_in_schema=False)
    ] = None,
    x_api_key: Annotated[str | None, Header(description="The API key", alias="X-API-Key")] = None,
) -> Principal:
    plaintext = x_api_key
    if plaintext is None and authorization and authorization.lower().startswith("bearer "):
        plaintext = authorization[7:].strip()
    if not plaintext:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = authenticate(session, plaintext=plaintext, pepper=context.settings.secret_key)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid, revoked or expired API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    enforce_rate_limit(context.settings, principal.key_id)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Principal]:
    allowed = ", ".join(r.value for r in roles)

    def dependency(principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role '{principal.role.value}' may not do this; allowed roles: {allowed}",
            )
        return principal

    return dependency


ReaderDep = Annotated[Principal, Depends(require_roles(Role.ministry, Role.analyst, Role.admin))]
WriterDep = Annotated[Principal, Depends(require_roles(Role.ministry, Role.admin))]
AnalystDep = Annotated[Principal, Depends(require_roles(Role.analyst, Role.admin))]
AdminDep = Annotated[Principal, Depends(require_roles(Role.admin))]
AnyRoleDep = PrincipalDep


def tenant_scope(principal: Principal) -> int | None:
    """The tenant a caller is confined to; None reads across tenants (analyst, admin)."""
    return principal.tenant_id if principal.role in (Role.ministry, Role.dashboard) else None


async def database_unavailable_error(_request: Request, exc: Exception) -> JSONResponse:
    """A refused or dropped database connection is an outage, not a bug: 503, retry later."""
    log.warning("database unavailable during a request: %s", type(exc).__name__)
    return JSONResponse({"detail": DATABASE_UNAVAILABLE}, status_code=503, headers=RETRY_AFTER)


def install_database_errors(app: FastAPI) -> None:
    for error in (OperationalError, InterfaceError):
        app.add_exception_handler(error, database_unavailable_error)


def invalid(field: str, message: str, value: Any = None) -> RequestValidationError:
    """A 422 in FastAPI's own shape, so clients parse every validation error alike."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}]
    )


def resolve_tenant(
    session: Session, principal: Principal, tenant: str | None
) -> tuple[tuple[int, ...] | None, str | None]:
    """Ministry and dashboard keys read their own tenant; analysts and admins any (or all)."""
    scope = tenant_scope(principal)
    if principal.role in (Role.ministry, Role.dashboard):
        if scope is None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this {principal.role.value} key has no tenant: create it with --tenant NAME",
            )
        own = session.get(Tenant, scope)
        own_name = own.name if own else None
        if tenant is not None and tenant != own_name:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"a {principal.role.value} key acts for its own tenant only",
            )
        return (scope,), own_name
    if tenant is None:
        return None, None
    found = get_tenant_by_name(session, name=tenant)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"tenant '{tenant}' not found")
    return (found.id,), found.name
