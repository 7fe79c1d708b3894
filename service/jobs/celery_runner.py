"""The API's side of the Celery runner: it only enqueues; `sawt worker` processes.

`submit` hands the batch id to a background thread that publishes one small dispatch message,
so a slow or unreachable broker never blocks a request; a failed publish is retried with backoff
until it succeeds or the API stops. A batch whose message never left (the API died first) is
still `queued` in the database, and any API process re-sends those at start: dispatch is
idempotent, so a duplicate message costs one no-op task.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.batches.service import queued_batch_ids
from service.core.config import Settings
from service.core.db import session_scope
from service.jobs.celery_app import DISPATCH_TASK, QUEUE, SawtCelery, make_celery

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class CeleryRunner:
    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: sessionmaker[Session] | None = None,
        app: SawtCelery | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.app = app or make_celery(settings)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._redis: Any = None

    def start(self) -> None:
        if self._thread is not None:
            return
        if self.session_factory is not None:
            with session_scope(self.session_factory) as session:
                for batch_id in queued_batch_ids(session):
                    self._queue.put(batch_id)
        self._thread = threading.Thread(target=self._run, name="sawt-celery-submit", daemon=True)
        self._thread.start()

    def submit(self, batch_id: str) -> None:
        self._queue.put(batch_id)

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.app.close()

    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0

    def join(self) -> None:
        """Wait until every submitted batch is published (not processed: workers do that)."""
        self._queue.join()

    def publish(self, batch_id: str) -> None:
        self.app.send_task(DISPATCH_TASK, args=[batch_id], queue=QUEUE)

    def queue_depth(self) -> tuple[int, int]:
        """(messages waiting in the queue, messages taken by workers and not yet acknowledged)."""
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.settings.broker_url, socket_timeout=2)
        waiting = int(self._redis.llen(QUEUE))
        in_flight = int(self._redis.hlen("unacked"))
        return waiting, in_flight

    def _run(self) -> None:
        while True:
            batch_id = self._queue.get()
            try:
                if batch_id is None:
                    return
                self._publish_with_retry(batch_id)
            finally:
                self._queue.task_done()

    def _publish_with_retry(self, batch_id: str) -> None:
        attempt = 0
        while True:
            try:
                self.publish(batch_id)
                return
            except Exception as exc:
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                log.error(
                    "could not enqueue batch %s (%s); retrying in %.1fs",
                    batch_id,
                    type(exc).__name__,
                    delay,
                    extra={"batch_id": batch_id},
                )
                attempt += 1
                if self._stopping.wait(delay):
                    log.warning(
                        "API stopping: batch %s stays queued; re-sent at next start", batch_id
                    )
                    return
