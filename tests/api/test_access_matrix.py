"""Access control: every route × every caller × own/other tenant, keys, CORS, error documentation.

The matrix (`ENDPOINTS`) is the access policy written down once: for each route, what each role
may do with its own tenant's objects and with another tenant's. A route the app serves without
an entry fails `test_every_route_has_a_matrix_entry`, so a new route cannot skip the policy.
Objects are made per tenant by factories; each case checks the status, that a refused call
changed nothing, that a foreign id answers exactly like a missing one, and that the error is
documented in the OpenAPI document with the body it really has.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from service.api.openapi import ErrorResponse, UnprocessableResponse
from service.batches.models import Batch
from service.cli import app as cli_app
from service.complaints.models import Complaint, LabelCorrection
from service.core.config import DEV_SECRET, Settings, get_settings
from service.core.db import make_engine, make_session_factory, session_scope
from service.core.security import split_prefix
from service.main import create_app
from service.tenants.models import ApiKey, Role, Tenant
from service.tenants.service import KeyCreationError, create_key
from service.themes.models import ThemeRun
from service.topics.models import CustomTopic
from tests.conftest import (
    DATABASES,
    POSTGRES_URL,
    _postgres_schema_url,
    complaints_payload,
    migrate,
)

MINISTRY, DASHBOARD, ANALYST, ADMIN = "ministry", "dashboard", "analyst", "admin"
NO_KEY, BAD_KEY = "no key", "bad key"
CALLERS = (MINISTRY, DASHBOARD, ANALYST, ADMIN, NO_KEY, BAD_KEY)
OWN, OTHER, MISSING, NONE = "own", "other", "missing", "-"
TENANTS = {OWN: "ministry-a", OTHER: "ministry-b"}

# What a role may do: the outcome for an own-tenant and an other-tenant target.
ALLOW = "allow"  # both
DENY = "deny"  # 403 for both
OWN_ID = "own-id"  # own; another tenant's id answers 404, like an id that does not exist
OWN_NAME = "own-name"  # own; naming another tenant answers 403
PUBLIC = "public"  # no key needed: every caller, with or without a key, gets the answer

READ_BY_ID = {MINISTRY: OWN_ID, DASHBOARD: DENY, ANALYST: ALLOW, ADMIN: ALLOW}
READ_BY_NAME = {MINISTRY: OWN_NAME, DASHBOARD: OWN_NAME, ANALYST: ALLOW, ADMIN: ALLOW}
WRITE_BY_NAME = {MINISTRY: OWN_NAME, DASHBOARD: DENY, ANALYST: DENY, ADMIN: ALLOW}
ANY_ROLE = dict.fromkeys((MINISTRY, DASHBOARD, ANALYST, ADMIN), ALLOW)
ADMIN_ONLY = {MINISTRY: DENY, DASHBOARD: DENY, ANALYST: DENY, ADMIN: ALLOW}
ANALYSTS = {MINISTRY: DENY, DASHBOARD: DENY, ANALYST: ALLOW, ADMIN: ALLOW}


# -- the world: two tenants, a key per role, objects per tenant --------------------------------
@dataclass
class World:
    client: TestClient
    app: FastAPI
    settings: Settings
    sessions: sessionmaker[Session]
    keys: dict[str, str]
    batches: dict[str, str] = field(default_factory=dict)
    complaints: dict[str, int] = field(default_factory=dict)
    serial: Iterator[int] = field(default_factory=itertools.count)

    def headers(self, caller: str) -> dict[str, str]:
        key = self.keys.get(caller)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def tenant_id(self, target: str) -> int:
        with self.sessions() as session:
            tenant = session.scalar(select(Tenant).where(Tenant.name == TENANTS[target]))
            assert tenant is not None
            return tenant.id

    def add_custom_topic(self, target: str) -> str:
        """A custom topic written straight to the store: deleting it must not need the encoder."""
        topic_id = f"topic_{next(self.serial)}"
        with session_scope(self.sessions) as session:
            session.add(
                CustomTopic(
                    tenant_id=self.tenant_id(target),
                    topic_id=topic_id,
                    name=topic_id,
                    examples=["a", "b", "c"],
                    centroid=bytes(8),
                    threshold=0.5,
                    scale=1.0,
                    encoder_version="test",
                )
            )
        return topic_id

    def add_theme_run(self, target: str) -> None:
        now = datetime.now(UTC)
        with session_scope(self.sessions) as session:
            session.add(
                ThemeRun(
                    tenant_id=self.tenant_id(target),
                    window_start=now - timedelta(days=28),
                    window_end=now,
                    n_documents=0,
                    themes={"themes": [], "topics_over_time": []},
                )
            )

    def fingerprint(self) -> tuple[int, ...]:
        """Row counts of what a call could create, change or delete."""
        with self.sessions() as session:
            return tuple(
                session.scalar(select(func.count()).select_from(model)) or 0
                for model in (Batch, Complaint, LabelCorrection, CustomTopic, ThemeRun)
            )


def _make_key(settings: Settings, role: Role, tenant: str | None = None, **extra: Any) -> str:
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            created = create_key(
                session, role=role, pepper=settings.secret_key, tenant_name=tenant, **extra
            )
    finally:
        engine.dispose()
    return created.plaintext


@pytest.fixture(scope="module", params=DATABASES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip("SAWT_TEST_POSTGRES_URL is not set (.ci/run sets it)")
        urls = _postgres_schema_url(POSTGRES_URL)
        url = next(urls)
    else:
        urls = None
        url = f"sqlite:///{tmp_path_factory.mktemp('access') / 'sawt.db'}"
    # No runner: access is decided before any analysis, and pending complaints are readable.
    settings = Settings(environment="test", database_url=url, rate_limit_per_minute=0)  # type: ignore[arg-type]
    migrate(url)
    analyst = _make_key(settings, Role.analyst)
    keys = {
        MINISTRY: _make_key(settings, Role.ministry, TENANTS[OWN]),
        DASHBOARD: _make_key(settings, Role.dashboard, TENANTS[OWN]),
        ANALYST: analyst,
        ADMIN: _make_key(settings, Role.admin),
        BAD_KEY: analyst[:-6] + ("x" * 6 if not analyst.endswith("x" * 6) else "y" * 6),
    }
    other_ministry = _make_key(settings, Role.ministry, TENANTS[OTHER])
    engine = make_engine(url)
    app = create_app(settings, start_runner=False)
    try:
        with TestClient(app, follow_redirects=False) as client:
            world = World(client, app, settings, make_session_factory(engine), keys)
            for target, key in ((OWN, keys[MINISTRY]), (OTHER, other_ministry)):
                payload = complaints_payload(2, prefix=target)
                posted = client.post(
                    "/v1/batches", json=payload, headers={"Authorization": f"Bearer {key}"}
                )
                assert posted.status_code == 202, posted.text
                world.batches[target] = posted.json()["id"]
                with world.sessions() as session:
                    world.complaints[target] = (
                        session.scalars(
                            select(Complaint.id).where(Complaint.batch_id == posted.json()["id"])
                        ).first()
                        or 0
                    )
                world.add_theme_run(target)
                world.add_custom_topic(target)
            yield world
    finally:
        engine.dispose()
        if urls is not None:
            next(urls, None)


# -- the matrix --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    object_id: str | None = None  # an id in the URL, to compare a foreign id with a missing one


Builder = Callable[[World, str, str], Call]  # (world, caller, target) -> the request


@dataclass(frozen=True)
class Endpoint:
    rules: dict[str, str]
    build: Builder
    ok: int = 200
    targets: tuple[str, ...] = (OWN, OTHER)
    ok_detail: str | None = None  # an allowed call's expected detail, when `ok` is an error


def get(path: str) -> Builder:
    return lambda _w, _c, _t: Call("GET", path)


def by_name(method: str, path: str, body: Callable[[World], Any] | None = None) -> Builder:
    def build(world: World, _caller: str, target: str) -> Call:
        return Call(method, path, {"tenant": TENANTS[target]}, body(world) if body else None)

    return build


def batch_call(suffix: str = "") -> Builder:
    def build(world: World, _caller: str, target: str) -> Call:
        batch_id = world.batches.get(target, "0" * 32)
        return Call("GET", f"/v1/batches/{batch_id}{suffix}", object_id=batch_id)

    return build


def complaint_call(method: str, suffix: str = "", body: Any = None) -> Builder:
    def build(world: World, _caller: str, target: str) -> Call:
        complaint_id = str(world.complaints.get(target, 2**31 - 1))
        return Call(
            method, f"/v1/complaints/{complaint_id}{suffix}", json=body, object_id=complaint_id
        )

    return build


def delete_topic(world: World, caller: str, target: str) -> Call:
    """A fresh topic of the target tenant; analysts and admins name the tenant, others cannot."""
    topic_id = "zz_missing" if target == MISSING else world.add_custom_topic(target)
    owner = OWN if target == MISSING else target
    params = {"tenant": TENANTS[owner]} if caller in (ANALYST, ADMIN) else {}
    return Call("DELETE", f"/v1/topics/{topic_id}", params, object_id=topic_id)


def new_topic(world: World) -> dict[str, Any]:
    examples = ["la cantine est froide", "repas de cantine immangeables", "school lunch is cold"]
    return {"id": f"canteen_{next(world.serial)}", "name": "Canteens", "examples": examples}


ENDPOINTS: dict[str, Endpoint] = {
    "POST /v1/batches": Endpoint(
        WRITE_BY_NAME,
        by_name(
            "POST", "/v1/batches", lambda w: complaints_payload(1, prefix=f"m{next(w.serial)}")
        ),
        ok=202,
    ),
    "GET /v1/batches/{batch_id}": Endpoint(READ_BY_ID, batch_call()),
    "GET /v1/batches/{batch_id}/results": Endpoint(READ_BY_ID, batch_call("/results")),
    "GET /v1/complaints": Endpoint(READ_BY_NAME, by_name("GET", "/v1/complaints")),
    "GET /v1/complaints/{complaint_id}": Endpoint(READ_BY_ID, complaint_call("GET")),
    "PATCH /v1/complaints/{complaint_id}/labels": Endpoint(
        ANALYSTS, complaint_call("PATCH", "/labels", {"sentiment": "negative"})
    ),
    "POST /v1/analyze": Endpoint(
        ANY_ROLE,
        lambda _w, _c, _t: Call("POST", "/v1/analyze", json={"texts": ["Le guichet est fermé"]}),
        targets=(NONE,),
    ),
    "GET /v1/models": Endpoint(ANY_ROLE, get("/v1/models"), targets=(NONE,)),
    "POST /v1/models/reload": Endpoint(
        ADMIN_ONLY, lambda _w, _c, _t: Call("POST", "/v1/models/reload"), targets=(NONE,)
    ),
    "GET /v1/topics": Endpoint(READ_BY_NAME, by_name("GET", "/v1/topics")),
    "POST /v1/topics": Endpoint(WRITE_BY_NAME, by_name("POST", "/v1/topics", new_topic), ok=201),
    "DELETE /v1/topics/{topic_id}": Endpoint(
        {MINISTRY: OWN_ID, DASHBOARD: DENY, ANALYST: DENY, ADMIN: ALLOW}, delete_topic, ok=204
    ),
    "GET /v1/themes": Endpoint(READ_BY_NAME, by_name("GET", "/v1/themes")),
    # Allowed callers get past access control to the data check: no analysed complaint here.
    "POST /v1/themes/discover": Endpoint(
        WRITE_BY_NAME,
        by_name("POST", "/v1/themes/discover"),
        ok=422,
        ok_detail="discovery needs at least 20",
    ),
    "GET /v1/trends": Endpoint(READ_BY_NAME, by_name("GET", "/v1/trends")),
    "GET /v1/alerts": Endpoint(READ_BY_NAME, by_name("GET", "/v1/alerts")),
    "GET /v1/reports/summary": Endpoint(READ_BY_NAME, by_name("GET", "/v1/reports/summary")),
    "GET /v1/audit": Endpoint(ADMIN_ONLY, get("/v1/audit"), targets=(NONE,)),
    # Public: probes, metrics (internal network), documentation, the dashboard's static page.
    "GET /healthz": Endpoint({}, get("/healthz"), targets=(NONE,)),
    "GET /readyz": Endpoint({}, get("/readyz"), targets=(NONE,)),
    "GET /metrics": Endpoint({}, get("/metrics"), targets=(NONE,)),
    "GET /openapi.json": Endpoint({}, get("/openapi.json"), targets=(NONE,)),
    "GET /docs": Endpoint({}, get("/docs"), targets=(NONE,)),
    "GET /docs/oauth2-redirect": Endpoint({}, get("/docs/oauth2-redirect"), targets=(NONE,)),
    "GET /redoc": Endpoint({}, get("/redoc"), targets=(NONE,)),
    "GET /dashboard": Endpoint({}, get("/dashboard"), targets=(NONE,)),
    "GET /dashboard/": Endpoint({}, get("/dashboard/"), ok=308, targets=(NONE,)),
    "GET /dashboard/static/vendor/plotly.min.js": Endpoint(
        {}, get("/dashboard/static/vendor/plotly.min.js"), targets=(NONE,)
    ),
    "GET /dashboard/static/{name}": Endpoint({}, get("/dashboard/static/app.js"), targets=(NONE,)),
    "GET /dashboard/static/vendor/plotly.css": Endpoint(
        {}, get("/dashboard/static/vendor/plotly.css"), targets=(NONE,)
    ),
    "GET /dashboard/i18n.json": Endpoint({}, get("/dashboard/i18n.json"), targets=(NONE,)),
}


def expected_status(endpoint: Endpoint, caller: str, target: str) -> int:
    if not endpoint.rules:
        return endpoint.ok
    if caller in (NO_KEY, BAD_KEY):
        return 401
    rule = endpoint.rules[caller]
    if rule == DENY:
        return 403
    if target == OTHER and rule == OWN_ID:
        return 404
    if target == OTHER and rule == OWN_NAME:
        return 403
    return endpoint.ok


CASES = [
    pytest.param(route, caller, target, id=f"{route}|{caller}|{target}")
    for route, endpoint in ENDPOINTS.items()
    for caller in CALLERS
    for target in endpoint.targets
]


def send(world: World, call: Call, caller: str) -> Any:
    return world.client.request(
        call.method, call.url, params=call.params, json=call.json, headers=world.headers(caller)
    )


def operation(world: World, route: str) -> dict[str, Any] | None:
    method, path = route.split(" ", 1)
    found: dict[str, Any] | None = world.app.openapi()["paths"].get(path, {}).get(method.lower())
    return found


def assert_documented(world: World, route: str, response: Any) -> None:
    """An error answer is declared for its operation, with the body it really has."""
    op = operation(world, route)
    assert op is not None, f"{route} answered {response.status_code} but is not documented"
    declared = op["responses"].get(str(response.status_code))
    assert declared is not None, f"{route}: {response.status_code} is not declared"
    model = UnprocessableResponse if response.status_code == 422 else ErrorResponse
    schema = declared["content"]["application/json"]["schema"]
    assert schema == {"$ref": f"#/components/schemas/{model.__name__}"}
    model.model_validate(response.json())
    for header, spec in declared.get("headers", {}).items():
        assert not spec.get("required") or header in response.headers, f"{route}: no {header}"


@pytest.mark.parametrize(("route", "caller", "target"), CASES)
def test_access_matrix(world: World, route: str, caller: str, target: str) -> None:
    endpoint = ENDPOINTS[route]
    expected = expected_status(endpoint, caller, target)
    call = endpoint.build(world, caller, target)
    before = world.fingerprint()

    response = send(world, call, caller)

    assert response.status_code == expected, response.text
    if endpoint.ok_detail and expected == endpoint.ok:
        assert endpoint.ok_detail in response.json()["detail"]
    if expected in (401, 403, 404):
        assert world.fingerprint() == before, "a refused call changed stored data"
    if response.status_code >= 400:
        assert_documented(world, route, response)
    if expected == 404:  # a foreign id reads exactly like an id that does not exist
        foreign = endpoint.build(world, caller, target)
        missing = endpoint.build(world, caller, MISSING)
        assert foreign.object_id and missing.object_id and foreign.object_id != missing.object_id
        again, absent = send(world, foreign, caller), send(world, missing, caller)
        assert absent.status_code == again.status_code == 404
        assert again.json()["detail"].replace(foreign.object_id, "ID") == absent.json()[
            "detail"
        ].replace(missing.object_id, "ID")


def test_every_route_has_a_matrix_entry(world: World) -> None:
    served = {
        f"{method} {context.path_format}"
        for context in iter_route_contexts(world.app.routes)
        for method in context.methods or ()
        if method != "HEAD"
    }
    documented = {
        f"{method.upper()} {path}"
        for path, operations in world.app.openapi()["paths"].items()
        for method in operations
    }

    assert served == set(ENDPOINTS), "add the new route to ENDPOINTS with its access rules"
    assert documented <= served


def test_keyed_operations_document_401_403_429_and_422(world: World) -> None:
    """Read from the matrix (the policy), not from the dependency walk that writes the docs."""
    for route, endpoint in ENDPOINTS.items():
        if not endpoint.rules:
            continue
        responses = (operation(world, route) or {}).get("responses", {})
        codes = {"401", "429", "422"}
        if set(endpoint.rules.values()) & {DENY, OWN_NAME}:
            codes.add("403")
        assert codes <= set(responses), f"{route} lacks {codes - set(responses)}"
        for code in codes:
            name = "UnprocessableResponse" if code == "422" else "ErrorResponse"
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{name}"}, (route, code)
        assert responses["401"]["headers"]["WWW-Authenticate"]["required"]
        assert responses["429"]["headers"]["Retry-After"]["required"]


@pytest.mark.parametrize("path", ["/v1/themes", "/v1/themes/discover"])
def test_tenant_missing_is_a_documented_validation_error(world: World, path: str) -> None:
    method = "GET" if path == "/v1/themes" else "POST"
    response = world.client.request(method, path, headers=world.headers(ADMIN))

    assert response.status_code == 422
    body = UnprocessableResponse.model_validate(response.json())
    assert isinstance(body.detail, list) and body.detail[0].loc == ["query", "tenant"]
    assert_documented(world, f"{method} {path}", response)


def test_a_key_without_tenant_reads_no_tenant_data(world: World) -> None:
    """Such a key can no longer be created; one left by an older version must read nothing."""
    with pytest.raises(KeyCreationError, match="--tenant"):
        _make_key(world.settings, Role.dashboard)
    key = _make_key(world.settings, Role.dashboard, tenant="legacy")
    engine = make_engine(world.settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            session.execute(
                update(ApiKey).where(ApiKey.prefix == split_prefix(key)).values(tenant_id=None)
            )
    finally:
        engine.dispose()
    headers = {"Authorization": f"Bearer {key}"}

    for path in ("/v1/themes", "/v1/topics", "/v1/trends", "/v1/complaints", "/v1/alerts"):
        response = world.client.get(path, headers=headers)
        assert response.status_code == 403, (path, response.text)
        assert "no tenant" in response.json()["detail"]


# -- keys: revoked, expired, another tenant's ---------------------------------------------------
@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """`sawt …` against the world's database; returns stdout, asserting a zero exit."""
    monkeypatch.setenv("SAWT_DATABASE_URL", world.settings.database_url)
    get_settings.cache_clear()

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli_app, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout

    yield run
    get_settings.cache_clear()


def test_revoked_key_is_refused_at_once(world: World, cli: Callable[..., str]) -> None:
    key = cli("keys", "create", "--role", "analyst").strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {key}"}
    assert world.client.get("/v1/models", headers=headers).status_code == 200

    prefix = split_prefix(key)
    assert prefix is not None
    cli("keys", "revoke", prefix)
    refused = world.client.get("/v1/models", headers=headers)

    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert world.client.get("/v1/models", headers=world.headers(ANALYST)).status_code == 200


def test_key_stops_working_when_it_expires(
    world: World, cli: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = cli("keys", "create", "--role", "analyst", "--expires-in-days", "1").splitlines()[-1]
    headers = {"X-API-Key": key}
    assert world.client.get("/v1/models", headers=headers).status_code == 200

    later = datetime.now(UTC) + timedelta(days=1, minutes=1)
    monkeypatch.setattr("service.tenants.service.utcnow", lambda: later)
    refused = world.client.get("/v1/models", headers=headers)

    assert refused.status_code == 401
    assert "expired" in refused.json()["detail"]


def test_key_created_already_expired_is_refused(world: World) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    key = _make_key(world.settings, Role.admin, expires_at=past)

    response = world.client.get("/v1/audit", headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == 401


def test_another_tenants_key_cannot_read_by_id_or_by_name(world: World) -> None:
    stranger = {"Authorization": f"Bearer {_make_key(world.settings, Role.ministry, 'ministry-c')}"}
    own_batch, complaint = world.batches[OWN], world.complaints[OWN]

    assert world.client.get(f"/v1/batches/{own_batch}", headers=stranger).status_code == 404
    assert world.client.get(f"/v1/complaints/{complaint}", headers=stranger).status_code == 404
    named = world.client.get("/v1/trends", params={"tenant": TENANTS[OWN]}, headers=stranger)
    assert named.status_code == 403
    unknown = world.client.get("/v1/trends", params={"tenant": "no-such"}, headers=stranger)
    assert unknown.status_code == 403  # the same answer: a tenant's existence does not leak


# -- CORS and production settings ---------------------------------------------------------------
def preflight(client: TestClient, origin: str) -> Any:
    headers = {"Origin": origin, "Access-Control-Request-Method": "GET"}
    return client.options("/v1/trends", headers=headers)


def test_cors_is_closed_by_default(sqlite_url: str, make_settings: Callable[..., Settings]) -> None:
    client = TestClient(create_app(make_settings(sqlite_url)))  # no lifespan: no models needed

    answer = preflight(client, "https://evil.example")
    simple = client.get("/healthz", headers={"Origin": "https://evil.example"})

    assert "access-control-allow-origin" not in answer.headers
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


def test_cors_opens_only_to_configured_origins(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAWT_CORS_ORIGINS", '["https://dashboard.sante.gov.ma"]')
    settings = Settings(environment="test", database_url=sqlite_url)  # type: ignore[arg-type]
    client = TestClient(create_app(settings))

    allowed = preflight(client, "https://dashboard.sante.gov.ma")
    refused = preflight(client, "https://evil.example")
    simple = client.get("/healthz", headers={"Origin": "https://dashboard.sante.gov.ma"})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://dashboard.sante.gov.ma"
    assert "Authorization" in allowed.headers["access-control-allow-headers"]
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == "https://dashboard.sante.gov.ma"


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAWT_SECRET_KEY", raising=False)
    monkeypatch.setenv("SAWT_ENVIRONMENT", "production")

    with pytest.raises(ValidationError, match="SAWT_SECRET_KEY"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="SAWT_SECRET_KEY"):
        Settings(secret_key=DEV_SECRET, _env_file=None)  # type: ignore[call-arg]
    production = Settings(secret_key="s3cret-from-the-vault", _env_file=None)  # type: ignore[call-arg]
    assert production.environment == "production" and production.auto_migrate is False
