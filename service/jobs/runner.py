"""Job runners: the in-process default; Celery (service.jobs.celery_app) when one machine is
not enough. The API only ever calls `submit`."""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from models.pipeline import AnalysisPipeline
from service.batches.service import unfinished_batch_ids
from service.core.db import (
    RETRY_FIRST_DELAY,
    RETRY_MAX_DELAY,
    retry_while_unavailable,
    session_scope,
)
from service.jobs.processing import process_batch

log = logging.getLogger(__name__)


class JobRunner(Protocol):
    def start(self) -> None: ...

    def submit(self, batch_id: str) -> None: ...

    def stop(self, timeout: float | None = None) -> None: ...


class InProcessRunner:
    """One background thread: nothing else to start. At start it re-queues every batch left
    queued or half done, so an API restart loses nothing. A batch interrupted by a database
    outage is retried with capped exponential backoff until the database is back (chunks
    already committed stay done: only `pending` complaints are analysed)."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        pipeline_provider: Callable[[], AnalysisPipeline],
        chunk_size: int = 256,
        retry_first_delay: float = RETRY_FIRST_DELAY,
        retry_max_delay: float = RETRY_MAX_DELAY,
    ) -> None:
        self.session_factory = session_factory
        self.pipeline_provider = pipeline_provider
        self.chunk_size = chunk_size
        self.retry_first_delay = retry_first_delay
        self.retry_max_delay = retry_max_delay
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        if self._thread is not None:
            return
        with session_scope(self.session_factory) as session:
            for batch_id in unfinished_batch_ids(session):
                self._queue.put(batch_id)
        self._thread = threading.Thread(target=self._run, name="sawt-inprocess-runner", daemon=True)
        self._thread.start()

    def submit(self, batch_id: str) -> None:
        self._queue.put(batch_id)

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0

    def join(self) -> None:
        """Wait until every submitted batch is processed (tests and the CLI use it)."""
        self._queue.join()

    def _run(self) -> None:
        while not self._stopping.is_set():
            batch_id = self._queue.get()
            try:
                if batch_id is None:
                    return
                if not retry_while_unavailable(
                    functools.partial(self._process, batch_id),
                    stopping=self._stopping,
                    what=f"batch {batch_id}",
                    first_delay=self.retry_first_delay,
                    max_delay=self.retry_max_delay,
                ):
                    raise _Stopping
            except _Stopping:
                log.info("runner stopping; batch %s resumes at next start", batch_id)
                return
            except Exception:
                log.exception(
                    "batch %s failed; it stays queued and resumes at next start", batch_id
                )
            finally:
                self._queue.task_done()

    def _process(self, batch_id: str) -> None:
        process_batch(
            batch_id,
            session_factory=self.session_factory,
            pipeline=self.pipeline_provider(),
            chunk_size=self.chunk_size,
            on_chunk=self._check_stop,
        )

    def _check_stop(self, _batch_id: str, _moved: int) -> None:
        if self._stopping.is_set():
            raise _Stopping


class _Stopping(Exception):
    pass
