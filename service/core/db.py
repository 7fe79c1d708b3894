"""Engine, sessions and the declarative base shared by every domain's tables."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

log = logging.getLogger(__name__)

# Seconds before a PostgreSQL connection attempt gives up: an unreachable host must fail fast
# enough for readiness checks and retries, not hang on the kernel's TCP timeout.
CONNECT_TIMEOUT = 5
RETRY_FIRST_DELAY = 0.5
RETRY_MAX_DELAY = 15.0

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware UTC datetimes; SQLite gives naive ones back, so they are re-tagged as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        connect_args={"connect_timeout": CONNECT_TIMEOUT},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work for background jobs, which open their own sessions."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database cannot be reached right now (down, restarting,
    connection dropped, SQLite locked): worth retrying later, not a bug."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def backoff_delays(
    first: float = RETRY_FIRST_DELAY, cap: float = RETRY_MAX_DELAY
) -> Iterator[float]:
    """Exponential backoff, capped: 0.5, 1, 2, 4, 8, 15, 15, ... seconds by default."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


def retry_while_unavailable(
    action: Callable[[], None],
    *,
    stopping: threading.Event,
    what: str,
    first_delay: float = RETRY_FIRST_DELAY,
    max_delay: float = RETRY_MAX_DELAY,
) -> bool:
    """Run `action` until it no longer fails for want of a database, waiting longer each time.

    Returns True once it succeeded, False if `stopping` was set first; any other error
    propagates (retrying a bug only hides it).
    """
    for attempt, delay in enumerate(backoff_delays(first_delay, max_delay), start=1):
        try:
            action()
            if attempt > 1:
                log.info("%s: database back after %d attempts", what, attempt)
            return True
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            log.warning(
                "%s: database unavailable (%s); retrying in %.1fs",
                what,
                type(exc).__name__,
                delay,
                extra={"attempt": attempt},
            )
        if stopping.wait(delay):
            return False
    raise AssertionError("unreachable")  # backoff_delays never ends
