"""Error responses in the OpenAPI document, declared once for every operation.

Routes declare the errors of their own business rules; the errors every authenticated route
shares (401 from the key, 403 from a role check, 429 from the rate limit) and the shape of every
error body are added here, read from each route's dependency tree, so a new route cannot forget
them and the document cannot drift from what `service.api.deps` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute

from service.api.deps import get_pipeline, get_principal, require_roles
from service.batches.schemas import RowErrorPublic

ERROR_SCHEMA = "ErrorResponse"
UNPROCESSABLE_SCHEMA = "UnprocessableResponse"
NOT_MODIFIED = "304"


class ErrorResponse(BaseModel):
    """Every error but a 422: one message saying what is wrong and how to fix it."""

    detail: str = Field(description="What went wrong and how to fix the call")


class FieldError(BaseModel):
    """One item of FastAPI's validation errors (extra keys such as `input`, `ctx` may follow)."""

    loc: list[str | int] = Field(description='Where: e.g. ["query", "from"]')
    msg: str
    type: str


class RowErrors(BaseModel):
    """An upload refused as a whole: every row's error."""

    message: str
    errors: list[RowErrorPublic]
    errors_total: int | None = Field(default=None, description="Errors found, shown or not")


class UnprocessableResponse(BaseModel):
    """422: schema validation (a list of field errors), a business rule (a message), or an
    upload with no valid row (the rows' errors)."""

    detail: list[FieldError] | str | RowErrors


SHARED_ERRORS: dict[str, str] = {
    "400": "The body is not valid JSON",
    "401": "Missing, invalid, revoked or expired API key",
    "403": "The key's role, or its tenant, may not do this",
    "404": "No tenant of that name",
    "429": "This key's rate limit is spent; retry after `Retry-After` seconds",
    "503": "The models are still loading; retry in a few seconds",
}
ERROR_HEADERS: dict[str, dict[str, Any]] = {
    "401": {
        "WWW-Authenticate": {
            "description": "`Bearer`: the scheme to send the key with",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    "429": {
        "Retry-After": {
            "description": "Seconds to wait before the next request",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _is_role_check(call: Callable[..., Any]) -> bool:
    return getattr(call, "__qualname__", "").startswith(f"{require_roles.__qualname__}.<locals>.")


def _add_schemas(components: dict[str, Any]) -> None:
    """The error models (and the models they use) under `components/schemas`."""
    for model in (ErrorResponse, UnprocessableResponse):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components[model.__name__] = schema


def _error_content(code: str) -> dict[str, Any]:
    name = UNPROCESSABLE_SCHEMA if code == "422" else ERROR_SCHEMA
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _document_operation(operation: dict[str, Any], route: APIRoute) -> None:
    calls = list(_calls(route.dependant))
    responses: dict[str, Any] = operation.setdefault("responses", {})
    shared = []
    if get_principal in calls:
        shared += ["401", "429"]
    if any(_is_role_check(call) for call in calls):
        shared.append("403")
    parameters = operation.get("parameters", [])
    if any(p.get("in") == "query" and p.get("name") == "tenant" for p in parameters):
        shared.append("404")  # every `tenant` parameter is a name, and an unknown one is a 404
    if get_pipeline in calls:
        shared.append("503")
    if route.body_field is not None:
        shared.append("400")  # FastAPI's answer to a body it cannot parse
    for code in shared:
        responses.setdefault(code, {"description": SHARED_ERRORS[code]})
    for code, response in responses.items():
        if code == NOT_MODIFIED or code[0] not in "45":
            continue
        if code == "422" or get_principal in calls:
            response["content"] = _error_content(code)
        if code in ERROR_HEADERS:
            response["headers"] = ERROR_HEADERS[code]


def document_errors(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """Adds the shared errors and the error bodies to a generated document (idempotent)."""
    _add_schemas(schema.setdefault("components", {}).setdefault("schemas", {}))
    for context in iter_route_contexts(routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        path = schema.get("paths", {}).get(context.path_format, {})
        for method in context.methods or ():
            operation = path.get(method.lower())
            if operation is not None:
                _document_operation(operation, route)
    return schema


def install_error_responses(app: FastAPI) -> None:
    """Makes `app.openapi()` (and `/openapi.json`, `/docs`) return the documented errors."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        return document_errors(generate(), app.routes)

    app.openapi = openapi  # type: ignore[method-assign]
