"""Helpers for tests that run the real thing: `sawt serve` and `sawt worker` processes, and the
checks that nothing was lost or doubled (every complaint analysed once, rollups = a recount)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text

from service.complaints.models import Analysis, AnalysisTopic, Complaint
from service.core.config import Settings
from service.jobs.celery_app import make_celery
from service.trends.models import ALL_TOPICS, NONE, Rollup

REPO_ROOT = Path(__file__).resolve().parents[2]
# What the `sawt` script runs, without its plugin commands (training): not under test here.
SAWT = [sys.executable, "-c", "from service.cli import app; app()"]


def process_env(settings: Settings) -> dict[str, str]:
    """The environment a `sawt serve` / `sawt worker` child needs to use `settings`."""
    return {
        **os.environ,
        "SAWT_ENVIRONMENT": "test",
        "SAWT_DATABASE_URL": settings.database_url,
        "SAWT_BROKER_URL": settings.broker_url,
        "SAWT_JOB_RUNNER": "celery",
        "SAWT_WORKER_CHUNK_SIZE": str(settings.worker_chunk_size),
        "SAWT_BROKER_VISIBILITY_TIMEOUT": str(settings.broker_visibility_timeout),
        "SAWT_AUTO_MIGRATE": "false",
        "SAWT_LOG_FORMAT": "json",
        "SAWT_ENCODER_THREADS": "1",
    }


class Processes:
    """Child processes with their logs in files; all of them are stopped at teardown."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.directory / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [*SAWT, *args], cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def all_logs(self) -> str:
        return "\n".join(f"--- {n}\n{self.log(n)[-1500:]}" for n in self.procs)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{logs()[-4000:]}")
        time.sleep(0.2)


def analysed_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(
                select(func.count()).select_from(Complaint).where(Complaint.status == "analysed")
            )
            or 0
        )


def workers_ready(settings: Settings, count: int) -> Callable[[], bool]:
    app = make_celery(settings)

    def ready() -> bool:
        return len(app.control.ping(timeout=0.5)) >= count

    return ready


def recount(engine: Engine) -> Counter[tuple[Any, ...]]:
    """Rollup counts recomputed in Python from the complaints and analyses tables."""
    with engine.connect() as connection:
        topics: dict[int, list[str]] = {}
        for analysis_id, topic in connection.execute(
            select(AnalysisTopic.analysis_id, AnalysisTopic.topic)
        ):
            topics.setdefault(analysis_id, []).append(topic)
        expected: Counter[tuple[Any, ...]] = Counter()
        for row in connection.execute(
            select(
                Complaint.tenant_id,
                Complaint.received_at,
                Complaint.service,
                Complaint.region,
                Complaint.channel,
                Analysis.id,
                Analysis.sentiment,
                Analysis.language,
            ).join(Analysis, Analysis.complaint_id == Complaint.id)
        ):
            day = row.received_at.astimezone(UTC).date()
            rest: tuple[Any, ...] = (row.sentiment, row.language, row.service or NONE)
            rest += (row.region or NONE, row.channel or NONE)
            expected[(row.tenant_id, day, ALL_TOPICS, *rest)] += 1
            for topic in topics.get(row.id, []):
                expected[(row.tenant_id, day, topic, *rest)] += 1
    return expected


def rollups(engine: Engine) -> Counter[tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                Rollup.tenant_id,
                Rollup.day,
                Rollup.topic,
                Rollup.sentiment,
                Rollup.language,
                Rollup.service,
                Rollup.region,
                Rollup.channel,
                Rollup.count,
            )
        )
        return Counter({tuple(row[:-1]): row[-1] for row in rows if row[-1]})


def assert_analysed_exactly_once(engine: Engine, expected: int) -> None:
    """`expected` complaints stored, every one analysed, once; rollups equal a recount."""
    with engine.connect() as connection:
        complaints = connection.scalar(select(func.count()).select_from(Complaint))
        by_status = dict(
            connection.execute(select(Complaint.status, func.count()).group_by(Complaint.status))
            .tuples()
            .all()
        )
        analyses = connection.scalar(select(func.count()).select_from(Analysis))
        doubled = connection.execute(
            select(Analysis.complaint_id).group_by(Analysis.complaint_id).having(func.count() > 1)
        ).all()
        orphans = connection.scalar(
            text(
                "SELECT count(*) FROM complaints c WHERE NOT EXISTS "
                "(SELECT 1 FROM analyses a WHERE a.complaint_id = c.id)"
            )
        )
    assert complaints == expected
    assert by_status == {"analysed": expected}
    assert analyses == expected and doubled == [] and orphans == 0
    assert rollups(engine) == recount(engine)
