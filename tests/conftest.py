"""Shared fixtures: settings per database, an app client, API-key and payload factories."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from service.core.config import Settings
from service.core.db import make_engine, make_session_factory, session_scope
from service.core.migrate import upgrade
from service.main import create_app
from service.tenants.models import Role
from service.tenants.service import create_key

POSTGRES_URL = os.environ.get("SAWT_TEST_POSTGRES_URL")
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _postgres_schema_url(base_url: str) -> Iterator[str]:
    """A throwaway schema per test, so PostgreSQL tests never see each other's rows."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sawt.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("SAWT_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    yield from _postgres_schema_url(POSTGRES_URL)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sawt.db'}"


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def factory(database_url: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "worker_chunk_size": 200,
        }
        values.update(overrides)
        return Settings(**values)

    return factory


@pytest.fixture
def settings(database_url: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(database_url)


@dataclass
class KeyFactory:
    settings: Settings

    def __call__(self, role: Role | str = Role.ministry, tenant: str | None = "ministry-a") -> str:
        role = Role(role)
        migrate(self.settings.database_url)
        engine = make_engine(self.settings.database_url)
        try:
            with session_scope(make_session_factory(engine)) as session:
                created = create_key(
                    session,
                    role=role,
                    pepper=self.settings.secret_key,
                    tenant_name=tenant if role in (Role.ministry, Role.dashboard) else None,
                )
        finally:
            engine.dispose()
        return created.plaintext


@pytest.fixture
def make_key(settings: Settings) -> KeyFactory:
    return KeyFactory(settings)


def migrate(database_url: str) -> None:
    """What `sawt db upgrade` does before the API starts."""
    engine = make_engine(database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    migrate(settings.database_url)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def wait_for_batch(
    client: TestClient, batch_id: str, key: str, timeout: float = 300.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/batches/{batch_id}", headers=auth(key))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] == "done":
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} not done after {timeout}s: {body['progress']}")
        time.sleep(0.1)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


SAMPLE_TEXTS = [
    "بقيت كنتسنى شهر كامل باش ياخدو ليا الوراق ديال البطاقة الوطنية، والموظف ما بغاش يجاوبني",
    "Le portail est en panne depuis trois jours, impossible de payer la taxe en ligne.",
    "The hospital staff were very kind and the appointment was on time, thank you!",
    "wach 3adi nbqa nstna 3 chhor bach ykhrjo lia lwra9 dial l7alat lmadaniya?",
    "انقطاع الماء المتكرر في الحي منذ أسبوع دون أي إشعار من المكتب الوطني",
    "ⴰⵎⵓⵙⵙⵓ ⵏ ⵡⴰⵎⴰⵏ ⵉⵙⵙⵓⵔⴼ ⴰⵙⵙⴰ",
    "Merci pour l'accueil à la moqataa, service rapide et efficace.",
    "Appelez-moi au 06 12 34 56 78 ou écrivez à karim.benali@example.ma, CIN AB123456.",
]


def complaints_payload(n: int, *, prefix: str = "c", start: int = 0) -> dict[str, Any]:
    return {
        "complaints": [
            {
                "id": f"{prefix}-{i}",
                "text": SAMPLE_TEXTS[i % len(SAMPLE_TEXTS)] + f" #{i}",
                "channel": ["web", "app", "phone"][i % 3],
                "service": ["civil_registry", "health", "tax"][i % 3],
                "region": "Casablanca-Settat",
            }
            for i in range(start, start + n)
        ]
    }
