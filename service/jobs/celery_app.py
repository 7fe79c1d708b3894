"""The Celery application: broker and result backend on Redis, settings chosen for safe chunks.

Why these settings (see docs/deployment.md):

- `task_acks_late`: a chunk's message is acknowledged only after its transaction committed, so
  a worker that dies mid-chunk leaves the message unacknowledged and Redis hands it to another
  worker once `broker_visibility_timeout` has passed. Chunks are idempotent (only `pending`
  complaints are claimed), so a redelivered chunk doubles nothing.
- `task_reject_on_worker_lost`: with a process pool, a child killed mid-task returns its message
  at once instead of it being acknowledged as failed.
- `worker_prefetch_multiplier = 1`: a worker holds one chunk at a time; a slow worker never sits
  on work an idle one could take, and a killed worker strands at most one chunk.
- Visibility timeout: Redis has no acknowledgement protocol of its own; kombu keeps delivered
  messages in an `unacked` hash and restores those older than the timeout. It must be longer
  than the slowest chunk takes, else live chunks are redelivered (harmless, but wasted work).
  Restore sweeps run every `unacked_restore_interval` seconds (throttle 1: every sweep scans).
- One queue (`sawt`) and JSON only: no pickle from the broker.

`celery -A service.jobs.celery_app worker` works too; `sawt worker` is the documented way.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import Any

from celery import Celery

from service.core.config import Settings, get_settings

log = logging.getLogger("sawt.worker")

QUEUE = "sawt"
DISPATCH_TASK = "sawt.dispatch_batch"
CHUNK_TASK = "sawt.process_chunk"


class SawtCelery(Celery):
    """A Celery app that carries the service settings its tasks read."""

    settings: Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    visibility = settings.broker_visibility_timeout
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend_url or settings.broker_url,
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "unacked_restore_interval": max(1, min(10, visibility // 4)),
            "unacked_restore_throttle": 1,
        },
        "result_backend_transport_options": {"visibility_timeout": visibility},
        "broker_connection_retry_on_startup": True,
        "task_default_queue": QUEUE,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 24 * 3600,
        "task_track_started": False,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 2.0,
        },
        "worker_send_task_events": False,
        "enable_utc": True,
    }


def make_celery(settings: Settings) -> SawtCelery:
    app = SawtCelery("sawt", include=["service.jobs.tasks"], set_as_current=False)
    app.settings = settings
    app.conf.update(celery_config(settings))
    return app


def lower_cpu_priority(increment: int) -> int:
    """Raise this process's niceness by `increment` (`SAWT_WORKER_NICE`); returns the new value.

    Analysis is background work: on cores shared with the API and the database, a niced worker
    still gets every idle cycle but yields to interactive reads (dashboards polling trends).
    Threads started afterwards (the encoder's) inherit it, so call it first.
    """
    niceness = os.nice(increment) if increment > 0 else os.nice(0)
    log.info("worker niceness %d", niceness)
    return niceness


@cache
def default_app() -> SawtCelery:
    """The app built from `SAWT_*` environment variables (workers, `celery -A`)."""
    return make_celery(get_settings())


def __getattr__(name: str) -> Any:
    """`celery -A service.jobs.celery_app` looks up `app`: built on first use, not at import."""
    if name in ("app", "celery"):
        return default_app()
    raise AttributeError(name)
