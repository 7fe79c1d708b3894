"""End-to-end throughput: complaints/second from the first POST to the last complaint analysed.

A real API (`sawt serve`, Celery runner) and 1 or 2 `sawt worker` processes on Redis and
PostgreSQL, all on loopback; batches posted by concurrent clients; the clock stops when every
batch is `done`. Same-run baselines: one worker (the scaling ratio is 2 workers / 1 worker) and
the embedded in-process runner (API alone, no Redis). Each run gets a fresh schema and a flushed
Redis database; peak memory is read per process (VmHWM).

    python -m bench.bench_end_to_end --postgres-url postgresql+psycopg://postgres@127.0.0.1/test \\
        --redis-url redis://127.0.0.1:6379/14
    python -m bench.bench_end_to_end --quick

The models are the promoted ones of the registry the service is configured with
(`SAWT_MODEL_DIR`, default the shipped artifacts). Each mode stops at `--timeout` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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
    cpu_seconds,
    free_port,
    load_average,
    peak_rss_mib,
    postgres_schema,
    prepare,
)

TENANTS = ("bench-health", "bench-interior")


@dataclass
class EndToEndResult:
    mode: str
    workers: int
    complaints: int
    batches: int
    ingest_seconds: float
    seconds: float
    complaints_per_s: float
    worker_cpu_ms_per_complaint: float | None
    cpu_seconds: dict[str, float | None]
    peak_rss_mib: dict[str, float | None]
    load_average: list[float] = field(default_factory=list)


def _flush(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


def _ping_workers(redis_url: str, count: int, timeout: float) -> None:
    from service.core.config import Environment, Settings
    from service.jobs.celery_app import make_celery

    app = make_celery(Settings(environment=Environment.test, broker_url=redis_url))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=0.5)) >= count:
            app.close()
            return
    app.close()
    raise RuntimeError(f"{count} workers did not answer within {timeout}s")


def _all_done(database_url: str, expected: int) -> bool:
    from service.batches.models import Batch
    from service.core.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            done = connection.scalar(
                select(func.count()).select_from(Batch).where(Batch.status == "done")
            )
    finally:
        engine.dispose()
    return int(done or 0) >= expected


def run_mode(
    *,
    mode: str,
    workers: int,
    batches: int,
    batch_size: int,
    clients: int,
    postgres_url: str,
    redis_url: str,
    timeout: float,
    workdir: Path,
    log_level: str = "WARNING",
) -> EndToEndResult:
    _flush(redis_url)
    with postgres_schema(postgres_url) as url:
        keys = prepare(url, list(TENANTS))
        env = {
            **os.environ,
            "SAWT_DATABASE_URL": url,
            "SAWT_BROKER_URL": redis_url,
            "SAWT_ENVIRONMENT": "test",
            "SAWT_AUTO_MIGRATE": "false",
            "SAWT_LOG_LEVEL": log_level,
            "SAWT_JOB_RUNNER": "celery" if workers else "inprocess",
            "OMP_NUM_THREADS": "1",
        }
        sawt = SAWT
        port = free_port()
        procs: list[subprocess.Popen[bytes]] = []
        with Server([*sawt, "serve", "--port", str(port)], env, port, workdir / "api.log") as api:
            try:
                for i in range(workers):
                    log = (workdir / f"worker-{i}.log").open("wb")
                    procs.append(
                        subprocess.Popen(
                            [
                                *sawt,
                                "worker",
                                "--hostname",
                                f"bench-{i}@%h",
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
                if workers:
                    _ping_workers(redis_url, workers, 120)
                bodies = [
                    (TENANTS[i % len(TENANTS)], batch_body(batch_size, f"e2e-{i}", seed=i))
                    for i in range(batches)
                ]

                def post(item: tuple[str, bytes]) -> None:
                    tenant, body = item
                    response = httpx.post(
                        f"{api.base}/v1/batches",
                        content=body,
                        headers={
                            "Authorization": f"Bearer {keys[tenant]}",
                            "Content-Type": "application/json",
                        },
                        timeout=600,
                    )
                    response.raise_for_status()

                names = {"api": api.proc.pid} | {f"worker-{i}": p.pid for i, p in enumerate(procs)}
                cpu_before = {name: cpu_seconds(pid) or 0.0 for name, pid in names.items()}
                started = time.perf_counter()
                with ThreadPoolExecutor(max_workers=clients) as pool:
                    list(pool.map(post, bodies))
                ingested = time.perf_counter() - started
                deadline = started + timeout
                while not _all_done(url, batches):
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"{mode}: batches not done after {timeout}s")
                    time.sleep(0.25)
                elapsed = time.perf_counter() - started
                peaks = {"api": peak_rss_mib(api.proc.pid)}
                for i, proc in enumerate(procs):
                    peaks[f"worker-{i}"] = peak_rss_mib(proc.pid)
                cpu: dict[str, float | None] = {}
                for name, pid in names.items():
                    now = cpu_seconds(pid)
                    cpu[name] = round(now - cpu_before[name], 2) if now is not None else None
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
    total = batches * batch_size
    return EndToEndResult(
        mode=mode,
        workers=workers,
        complaints=total,
        batches=batches,
        ingest_seconds=round(ingested, 2),
        seconds=round(elapsed, 2),
        complaints_per_s=round(total / elapsed, 1),
        # CPU the analysing processes spent per complaint, from the first POST on: unlike
        # complaints/s it does not depend on what else the machine runs.
        worker_cpu_ms_per_complaint=_cpu_per_complaint(cpu, total, workers),
        cpu_seconds=cpu,
        peak_rss_mib=peaks,
        load_average=load_average(),
    )


def _cpu_per_complaint(cpu: dict[str, float | None], total: int, workers: int) -> float | None:
    names = [f"worker-{i}" for i in range(workers)] if workers else ["api"]
    values = [cpu.get(name) for name in names]
    if any(value is None for value in values):
        return None
    return round(1000 * sum(v for v in values if v is not None) / total, 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres-url", default=os.environ.get("SAWT_TEST_POSTGRES_URL"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--modes", default="inprocess,celery-1,celery-2")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=2500)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0, help="per mode")
    parser.add_argument("--quick", action="store_true", help="2 batches of 1,000")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--logs", type=Path, help="keep the processes' logs in this directory")
    parser.add_argument("--log-level", default="WARNING", help="of the API and workers")
    args = parser.parse_args(argv)
    if not args.postgres_url:
        raise SystemExit("--postgres-url (or SAWT_TEST_POSTGRES_URL) is required")
    if args.quick:
        args.batches, args.batch_size = 2, 1000
    results: list[dict[str, Any]] = []
    for mode in args.modes.split(","):
        workers = 0 if mode == "inprocess" else int(mode.split("-")[1])
        with tempfile.TemporaryDirectory(prefix="sawt-e2e-") as tmp:
            workdir = Path(tmp)
            if args.logs:
                workdir = args.logs / mode
                workdir.mkdir(parents=True, exist_ok=True)
            result = run_mode(
                mode=mode, workers=workers, batches=args.batches, batch_size=args.batch_size,
                clients=args.clients, postgres_url=args.postgres_url, redis_url=args.redis_url,
                timeout=args.timeout, workdir=workdir, log_level=args.log_level,
            )  # fmt: skip
        results.append(asdict(result))
        print(json.dumps(asdict(result)), flush=True)
    rates = {r["mode"]: r["complaints_per_s"] for r in results}
    if "celery-1" in rates and "celery-2" in rates:
        summary = {"speedup_2_workers_over_1": round(rates["celery-2"] / rates["celery-1"], 2)}
        print(json.dumps(summary), flush=True)
        results.append(summary)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
