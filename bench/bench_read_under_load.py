"""Read path under write load: `/v1/trends` requests/second and latency for 50 polling dashboards.

PostgreSQL is seeded with the rollups of `--complaints` synthetic analysed complaints
(`bench.seed_rollups`), then a real API (`sawt serve`, Celery runner) and `--workers` workers
start. Dashboards are asyncio pollers: each sends one of four typical dashboard queries, keeps
the ETag it got and sends it back (`If-None-Match`, as the API documents), then waits
`--interval` seconds (0: as fast as it can). Two phases of `--seconds` each, same run:

1. idle: the workers are up (models loaded) but have nothing to do (the baseline);
2. under load: batches are posted and analysed by the workers throughout, so the rollups the
   dashboards read change under them.

    python -m bench.bench_read_under_load --postgres-url postgresql+psycopg://postgres@127.0.0.1/test

Reports requests/s, p50/p95/p99 latency, the share of 304 answers, errors (and every status
seen), the CPU seconds the API and the workers used in each phase, peak memory of every process,
and the settings that shape the read path (`SAWT_WORKER_NICE`, `SAWT_TRENDS_CACHE_SECONDS`, taken
from the environment like the servers do: set them to compare, e.g. `SAWT_WORKER_NICE=0
SAWT_TRENDS_CACHE_SECONDS=0` for the behaviour before either existed). `--api-workers N` runs
`sawt serve --workers N`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench.bench_ingest import (
    REPO_ROOT,
    SAWT,
    Server,
    batch_body,
    children,
    cpu_seconds,
    free_port,
    load_average,
    own_peak_rss_mib,
    peak_rss_mib,
    percentile,
    postgres_schema,
)

TENANT = "bench-interior"  # the largest tenant of bench.seed_rollups
QUERIES = (
    {"granularity": "week"},
    {"granularity": "week", "group_by": "topic"},
    {"granularity": "month", "group_by": "sentiment"},
    {"granularity": "day", "service": "civil_registry", "from": "2025-10-01", "to": "2025-12-31"},
)


@dataclass
class PollResult:
    phase: str
    pollers: int
    interval_s: float
    seconds: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    not_modified_share: float
    errors: int
    complaints_analysed_during_phase: int
    statuses: dict[str, int] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    load_average: list[float] = field(default_factory=list)


def _keys(database_url: str) -> tuple[str, str]:
    """A dashboard key and a ministry key for the bench tenant."""
    from service.core.config import Environment, Settings
    from service.core.db import make_engine, make_session_factory, session_scope
    from service.tenants.models import Role
    from service.tenants.service import create_key

    pepper = Settings(environment=Environment.test, database_url=database_url).secret_key
    engine = make_engine(database_url)
    with session_scope(make_session_factory(engine)) as session:
        dashboard = create_key(session, role=Role.dashboard, pepper=pepper, tenant_name=TENANT)
        ministry = create_key(session, role=Role.ministry, pepper=pepper, tenant_name=TENANT)
    engine.dispose()
    return dashboard.plaintext, ministry.plaintext


def _analysed(database_url: str) -> int:
    from service.complaints.models import Analysis
    from service.core.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(Analysis)) or 0)
    finally:
        engine.dispose()


def _cpu(processes: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each named group of processes."""
    return {
        name: round(sum(cpu_seconds(pid) or 0.0 for pid in pids), 2)
        for name, pids in processes.items()
    }


async def _poll(
    base: str, key: str, pollers: int, interval: float, seconds: float
) -> tuple[list[float], int, int, dict[str, int]]:
    latencies: list[float] = []
    not_modified = 0
    errors = 0
    statuses: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=pollers, max_keepalive_connections=pollers)

    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def dashboard(index: int) -> None:
            nonlocal not_modified, errors
            etags: dict[int, str] = {}
            turn = index
            await asyncio.sleep(interval * index / max(pollers, 1))  # spread the first wave
            while time.perf_counter() < deadline:
                variant = turn % len(QUERIES)
                turn += 1
                headers = {"Authorization": f"Bearer {key}"}
                if variant in etags:
                    headers["If-None-Match"] = etags[variant]
                started = time.perf_counter()
                try:
                    response = await client.get("/v1/trends", params=QUERIES[variant],
                                                headers=headers)  # fmt: skip
                except httpx.HTTPError as exc:
                    errors += 1
                    statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - started)
                code = str(response.status_code)
                statuses[code] = statuses.get(code, 0) + 1
                if response.status_code == 304:
                    not_modified += 1
                elif response.status_code == 200:
                    etags[variant] = response.headers.get("etag", "")
                else:
                    errors += 1
                if interval:
                    await asyncio.sleep(interval)

        await asyncio.gather(*(dashboard(i) for i in range(pollers)))
    return latencies, not_modified, errors, statuses


def poll_phase(
    phase: str, processes: dict[str, list[int]], base: str, key: str, database_url: str,
    pollers: int, interval: float, seconds: float,
) -> PollResult:  # fmt: skip
    before = _analysed(database_url)
    cpu_before = _cpu(processes)
    started = time.perf_counter()
    latencies, not_modified, errors, statuses = asyncio.run(
        _poll(base, key, pollers, interval, seconds)
    )
    elapsed = time.perf_counter() - started
    cpu_after = _cpu(processes)
    ms = [x * 1000 for x in latencies]
    return PollResult(
        phase=phase,
        pollers=pollers,
        interval_s=interval,
        seconds=round(elapsed, 2),
        requests=len(latencies),
        requests_per_s=round(len(latencies) / elapsed, 1),
        p50_ms=round(percentile(ms, 0.5), 1),
        p95_ms=round(percentile(ms, 0.95), 1),
        p99_ms=round(percentile(ms, 0.99), 1),
        not_modified_share=round(not_modified / max(len(latencies), 1), 3),
        errors=errors,
        complaints_analysed_during_phase=_analysed(database_url) - before,
        statuses=dict(sorted(statuses.items())),
        cpu_s={name: round(cpu_after[name] - cpu_before[name], 2) for name in processes},
        load_average=load_average(),
    )


def wait_for_workers(broker_url: str, count: int, timeout: float = 300.0) -> None:
    """The idle baseline starts once every worker answers a ping, i.e. has loaded its models:
    a worker still loading would be load in the "idle" phase."""
    from service.core.config import Environment, Settings
    from service.jobs.celery_app import make_celery

    app = make_celery(Settings(environment=Environment.test, broker_url=broker_url))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= count:
            return
    raise RuntimeError(f"fewer than {count} workers answer after {timeout:.0f} s")


class Feeder(threading.Thread):
    """Keeps the workers busy: posts a batch whenever fewer than `backlog` batches are open."""

    def __init__(self, base: str, key: str, database_url: str, batch_size: int) -> None:
        super().__init__(daemon=True)
        self.base, self.key, self.url, self.batch_size = base, key, database_url, batch_size
        self.stop = threading.Event()
        self.posted = 0

    def open_batches(self) -> int:
        from service.batches.models import Batch
        from service.core.db import make_engine

        engine = make_engine(self.url)
        try:
            with engine.connect() as connection:
                count = connection.scalar(
                    select(func.count()).select_from(Batch).where(Batch.status != "done")
                )
        finally:
            engine.dispose()
        return int(count or 0)

    def run(self) -> None:
        while not self.stop.is_set():
            if self.open_batches() < 2:
                body = batch_body(self.batch_size, f"feed-{self.posted}", seed=self.posted)
                httpx.post(
                    f"{self.base}/v1/batches",
                    content=body,
                    headers={"Authorization": f"Bearer {self.key}",
                             "Content-Type": "application/json"},
                    timeout=300,
                ).raise_for_status()  # fmt: skip
                self.posted += 1
            self.stop.wait(0.5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres-url", default=os.environ.get("SAWT_TEST_POSTGRES_URL"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--complaints", type=int, default=200_000, help="seeded in rollups")
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--api-workers", type=int, default=1, help="sawt serve --workers N")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if not args.postgres_url:
        raise SystemExit("--postgres-url (or SAWT_TEST_POSTGRES_URL) is required")

    import redis

    from bench.seed_rollups import seed
    from service.core.config import Environment, Settings

    redis.Redis.from_url(args.redis_url).flushdb()
    read_path = Settings(environment=Environment.test)  # what the servers read from os.environ
    results: dict[str, Any] = {
        "config": {
            "worker_nice": read_path.worker_nice,
            "trends_cache_seconds": read_path.trends_cache_seconds,
            "api_workers": args.api_workers,
            "workers": args.workers,
            "cpus": os.cpu_count(),
        },
        "phases": [],
    }
    print(json.dumps(results["config"]), flush=True)
    with postgres_schema(args.postgres_url) as url, tempfile.TemporaryDirectory() as tmp:
        results["seed"] = seed(url, complaints=args.complaints, with_complaints=False)
        dashboard_key, ministry_key = _keys(url)
        env = {
            **os.environ,
            "SAWT_DATABASE_URL": url,
            "SAWT_BROKER_URL": args.redis_url,
            "SAWT_ENVIRONMENT": "test",
            "SAWT_AUTO_MIGRATE": "false",
            "SAWT_LOG_LEVEL": "WARNING",
            "SAWT_JOB_RUNNER": "celery",
            "OMP_NUM_THREADS": "1",
        }
        sawt = SAWT
        port = free_port()
        workers: list[subprocess.Popen[bytes]] = []
        serve = [*sawt, "serve", "--port", str(port), "--workers", str(args.api_workers)]
        with Server(serve, env, port, Path(tmp) / "api.log") as api:
            try:
                for i in range(args.workers):
                    log = (Path(tmp) / f"worker-{i}.log").open("wb")
                    workers.append(
                        subprocess.Popen(
                            [
                                *sawt,
                                "worker",
                                "--hostname",
                                f"read-{i}@%h",
                                "--encoder-threads",
                                "1",
                            ],
                            cwd=REPO_ROOT,
                            env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
                    log.close()
                api.wait_ready()
                wait_for_workers(args.redis_url, args.workers)
                processes = {
                    "api": [api.proc.pid, *children(api.proc.pid)],
                    "workers": [w.pid for w in workers],
                }
                common = (
                    processes, api.base, dashboard_key, url, args.pollers, args.interval,
                    args.seconds,
                )  # fmt: skip
                idle = poll_phase("idle", *common)
                print(json.dumps(asdict(idle)), flush=True)
                feeder = Feeder(api.base, ministry_key, url, args.batch_size)
                feeder.start()
                deadline = time.monotonic() + 120
                while _analysed(url) == 0 and time.monotonic() < deadline:
                    time.sleep(0.5)  # wait for the workers to be analysing
                busy = poll_phase("under_analysis", *common)
                feeder.stop.set()
                feeder.join(timeout=60)
                print(json.dumps(asdict(busy)), flush=True)
                results["phases"] = [asdict(idle), asdict(busy)]
                results["peak_rss_mib"] = {
                    **{f"api-{name}": rss for name, rss in api.peak_rss().items()},
                    **{f"worker-{i}": peak_rss_mib(w.pid) for i, w in enumerate(workers)},
                    "pollers_and_feeder": own_peak_rss_mib(),
                }
                print(json.dumps({"peak_rss_mib": results["peak_rss_mib"]}), flush=True)
            finally:
                for worker in workers:
                    worker.terminate()
                for worker in workers:
                    try:
                        worker.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        worker.kill()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
