"""`GET /v1/trends` latency with 1,000,000 complaints stored, on SQLite and PostgreSQL.

For each database: seed once (`bench.seed_rollups`: rollups, trend cube, and the complaints,
analyses and topic rows behind them; reused on later runs), then time a mix of typical
dashboard queries with httpx (keep-alive) against the real app under uvicorn in its own process,
as deployed: auth, validation, SQL, JSON, ETag; each request without `If-None-Match`, so every
one does the full work. Besides wall-clock latency it reports the server's CPU time per request
(from /proc), which does not depend on how busy the machine is. Same-run baseline: a few of the
same questions answered by scanning complaints + analyses (+ topic rows), the way one would
without rollups; their numbers are checked to be equal to the API's.

    python -m bench.bench_trends                      # SQLite, and PostgreSQL when
                                                      # SAWT_TEST_POSTGRES_URL is set
    python -m bench.bench_trends --complaints 200000 --budget-s 120

The measuring phase is bounded by --budget-s per database (default 120 s); the one-time seeding
of 1M complaints takes a few minutes per database and is not part of it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Date, Table, case, cast, create_engine, func, select, text
from sqlalchemy.orm import Session

import service.main
from bench import seed_rollups
from service.complaints.models import Analysis, AnalysisTopic, Complaint
from service.core.config import Environment, Settings
from service.core.db import make_engine, make_session_factory, session_scope
from service.core.migrate import upgrade
from service.tenants.models import Role
from service.tenants.service import create_key
from service.trends.cube import TrendCube, cube_exists, rebuild_cube
from service.trends.schemas import Granularity
from service.trends.service import period_sql

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "var" / "bench"
END = seed_rollups.START + timedelta(days=seed_rollups.DAYS - 1)
YEAR = {"from": seed_rollups.START.isoformat(), "to": END.isoformat()}
LAST_90 = {"from": (END - timedelta(days=89)).isoformat(), "to": END.isoformat()}

# What a dashboard asks, per tenant: its charts, filters and the report's per-service table.
MIX: list[tuple[str, dict[str, str]]] = [
    ("month, all", {"granularity": "month", **YEAR}),
    ("week, all", {"granularity": "week", **YEAR}),
    ("week by sentiment", {"granularity": "week", "group_by": "sentiment", **YEAR}),
    ("week by topic", {"granularity": "week", "group_by": "topic", **YEAR}),
    ("month by topic, service=health", {"granularity": "month", "group_by": "topic",
                                        "service": "health", **YEAR}),
    ("month by service", {"granularity": "month", "group_by": "service", **YEAR}),
    ("day, last 90 days", {"granularity": "day", **LAST_90}),
    ("week by region, topic=delays", {"granularity": "week", "group_by": "region",
                                      "topic": "delays", **YEAR}),
    ("month by topic, language=fr", {"granularity": "month", "group_by": "topic",
                                     "language": "fr", **YEAR}),
    ("week by channel, 90 days", {"granularity": "week", "group_by": "channel", **LAST_90}),
]  # fmt: skip
# Two dimensions at once: answered by the detail rollups, reported apart (ad-hoc analysis).
AD_HOC: list[tuple[str, dict[str, str]]] = [
    ("month by service, region=Oriental", {"granularity": "month", "group_by": "service",
                                           "region": "Oriental", **YEAR}),
    ("month, service=health & channel=web", {"granularity": "month", "service": "health",
                                             "channel": "web", **YEAR}),
]  # fmt: skip


def postgres_schema_url(base_url: str, schema: str) -> str:
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    admin.dispose()
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options=-csearch_path%3D{schema}"


def ensure_seeded(url: str, complaints: int) -> dict[str, Any]:
    """Seed unless this database already holds exactly this bench; build the cube."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            present = connection.scalar(
                text("SELECT count(*) FROM complaints WHERE batch_id = :b"),
                {"b": seed_rollups.BATCH_ID},
            )
        info: dict[str, Any] = {"seeded_now": False}
        if present != complaints:
            info = {"seeded_now": True, **seed_rollups.seed(url, complaints=complaints)}
        if not cube_exists(engine):  # until the cube's migration lands
            table = TrendCube.__table__
            assert isinstance(table, Table)
            table.create(engine)
        with engine.connect() as connection:  # built, and with every grain?
            month_rows = connection.scalar(
                select(func.count()).select_from(TrendCube).where(TrendCube.level == "month:")
            )
        if info["seeded_now"] or not month_rows:
            started = time.perf_counter()
            with session_scope(make_session_factory(engine)) as session:
                for tenant_id in _tenant_ids(session):
                    rebuild_cube(session, tenant_id=tenant_id)
            with engine.begin() as connection:
                connection.execute(text("ANALYZE"))
            info["cube_seconds"] = round(time.perf_counter() - started, 1)
        with engine.connect() as connection:
            info["rollup_rows"] = connection.scalar(text("SELECT count(*) FROM rollups"))
            info["cube_rows"] = connection.scalar(select(func.count()).select_from(TrendCube))
            info["complaints"] = connection.scalar(text("SELECT count(*) FROM complaints"))
        return info
    finally:
        engine.dispose()


def _tenant_ids(session: Session) -> list[int]:
    """The bench tenants' ids, in `seed_rollups.TENANTS` order."""
    from service.tenants.models import Tenant

    ids = {name: i for name, i in session.execute(select(Tenant.name, Tenant.id))}
    return [ids[name] for name in seed_rollups.TENANTS]


def make_keys(settings: Settings) -> dict[str, str]:
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            keys = {
                name: create_key(
                    session, role=Role.dashboard, pepper=settings.secret_key, tenant_name=name
                ).plaintext
                for name in seed_rollups.TENANTS
            }
            keys["analyst"] = create_key(
                session, role=Role.analyst, pepper=settings.secret_key
            ).plaintext
        return keys
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(port: int) -> None:
    """The real app under uvicorn, minus the models (trends never call them)."""
    service.main.load_pipeline = lambda *_: types.SimpleNamespace(model_version="bench")  # type: ignore[assignment]
    app = service.main.create_app(Settings(), start_runner=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextmanager
def api(url: str) -> Iterator[tuple[httpx.Client, int]]:
    """A uvicorn process serving `url`'s database; yields a client and the server's pid."""
    port = free_port()
    env = {
        **os.environ,
        "SAWT_DATABASE_URL": url,
        "SAWT_ENVIRONMENT": "test",
        "SAWT_LOG_LEVEL": "WARNING",
        "SAWT_AUTO_MIGRATE": "false",
        # Every request must do the full work: no reuse of computed answers.
        "SAWT_TRENDS_CACHE_SECONDS": "0",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_trends", "--serve", str(port)], cwd=REPO, env=env
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the bench server did not start")
                time.sleep(0.2)
            yield client, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p95_ms": round(percentile(values, 95) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


def timed_get(client: httpx.Client, key: str, params: dict[str, str]) -> tuple[float, Any]:
    started = time.perf_counter()
    response = client.get("/v1/trends", params=params, headers={"Authorization": f"Bearer {key}"})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return elapsed, response.json()


# --- the scan baseline ---------------------------------------------------------------------


def scan_counts(
    session: Session, *, tenant_id: int, granularity: Granularity, group: str | None,
    date_from: date, date_to: date, service: str | None = None,
) -> dict[tuple[str, str | None], tuple[int, int, int]]:  # fmt: skip
    """The same numbers as /v1/trends, by joining and grouping complaints and analyses."""
    dialect = session.get_bind().dialect.name
    day = (
        func.date(Complaint.received_at)
        if dialect == "sqlite"
        else cast(func.timezone("UTC", Complaint.received_at), Date)
    )
    period = period_sql(dialect, day, granularity).label("period")
    group_col: Any = None
    if group == "topic":
        group_col = AnalysisTopic.topic
    elif group == "sentiment":
        group_col = Analysis.sentiment
    elif group == "service":
        group_col = func.coalesce(Complaint.service, "")
    columns = [period] + ([group_col] if group_col is not None else [])
    statement = (
        select(
            *columns,
            *(
                func.sum(case((Analysis.sentiment == s, 1), else_=0))
                for s in seed_rollups.SENTIMENTS
            ),
        )
        .select_from(Complaint)
        .join(Analysis, Analysis.complaint_id == Complaint.id)
    )
    if group == "topic":
        statement = statement.join(AnalysisTopic, AnalysisTopic.analysis_id == Analysis.id)
    statement = statement.where(
        Complaint.tenant_id == tenant_id,
        Complaint.received_at >= datetime.combine(date_from, dtime.min, tzinfo=UTC),
        Complaint.received_at
        < datetime.combine(date_to + timedelta(days=1), dtime.min, tzinfo=UTC),
    )
    if service is not None:
        statement = statement.where(Complaint.service == service)
    rows = session.execute(statement.group_by(*columns)).all()
    out = {}
    for row in rows:
        key_period = str(row[0])[:10]
        key_group = (row[1] or None) if group_col is not None else None
        out[(key_period, key_group)] = tuple(int(v) for v in row[-3:])
    return out  # type: ignore[return-value]


def api_counts(
    body: dict[str, Any], group: str | None
) -> dict[tuple[str, str | None], tuple[int, int, int]]:
    out = {}
    for point in body["series"]:
        key_group = point["group"].get(group) if group else None
        out[(point["period"], key_group)] = (point["negative"], point["neutral"], point["positive"])
    return out


BASELINES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    ("month, all", {"granularity": "month", **YEAR},
     {"granularity": Granularity.month, "group": None}),
    ("week by topic", {"granularity": "week", "group_by": "topic", **YEAR},
     {"granularity": Granularity.week, "group": "topic"}),
    ("month by topic, service=health", {"granularity": "month", "group_by": "topic",
                                        "service": "health", **YEAR},
     {"granularity": Granularity.month, "group": "topic", "service": "health"}),
]  # fmt: skip


def run_database(
    name: str, url: str, complaints: int, budget_s: float, seed: int
) -> dict[str, Any]:
    setup = ensure_seeded(url, complaints)
    settings = Settings(
        environment=Environment.test, database_url=url, log_level="WARNING", auto_migrate=False
    )
    keys = make_keys(settings)
    rng = random.Random(seed)
    tenants = list(seed_rollups.TENANTS)
    per_query: dict[str, list[float]] = {label: [] for label, _ in MIX}
    ad_hoc: dict[str, list[float]] = {label: [] for label, _ in AD_HOC}
    sources: dict[str, str] = {}
    with api(url) as (client, server_pid):
        for _label, params in MIX:  # warm-up: one of each (connections, caches)
            timed_get(client, keys[tenants[0]], params)
        deadline = time.monotonic() + budget_s * 0.6
        cpu_before = cpu_seconds(server_pid)
        rounds = 0
        while time.monotonic() < deadline and rounds < 60:
            order = MIX[:]
            rng.shuffle(order)
            for label, params in order:
                tenant = rng.choice(tenants)
                elapsed, body = timed_get(client, keys[tenant], params)
                per_query[label].append(elapsed)
                sources[label] = body["source"]
            rounds += 1
        requests = sum(len(times) for times in per_query.values())
        server_cpu_ms = (cpu_seconds(server_pid) - cpu_before) / requests * 1000
        analyst: list[float] = []
        for _ in range(10):
            elapsed, body = timed_get(
                client, keys["analyst"], {"granularity": "month", "group_by": "tenant", **YEAR}
            )
            analyst.append(elapsed)
        sources["analyst: month by tenant"] = body["source"]
        for label, params in AD_HOC:
            for _ in range(5):
                elapsed, body = timed_get(client, keys[rng.choice(tenants)], params)
                ad_hoc[label].append(elapsed)
            sources[label] = body["source"]

        # Baseline: the same questions by scanning complaints + analyses, checked equal.
        engine = make_engine(url)
        baselines = []
        try:
            with Session(engine) as session:
                tenant_id = _tenant_ids(session)[0]
                for label, params, spec in BASELINES:
                    scan_times, result = [], {}
                    for _ in range(3):
                        started = time.perf_counter()
                        result = scan_counts(
                            session, tenant_id=tenant_id, date_from=seed_rollups.START,
                            date_to=END, **spec,
                        )  # fmt: skip
                        scan_times.append(time.perf_counter() - started)
                    api_times = []
                    for _ in range(5):
                        elapsed, body = timed_get(client, keys[tenants[0]], params)
                        api_times.append(elapsed)
                    baselines.append(
                        {
                            "query": label,
                            "scan_median_ms": round(statistics.median(scan_times) * 1000, 1),
                            "api_median_ms": round(statistics.median(api_times) * 1000, 2),
                            "ratio": round(
                                statistics.median(scan_times) / statistics.median(api_times), 1
                            ),
                            "same_numbers": api_counts(body, spec["group"]) == result,
                        }
                    )
        finally:
            engine.dispose()

    everything = [t for times in per_query.values() for t in times]
    return {
        "database": name,
        "setup": setup,
        "mix": summarize(everything),
        "server_cpu_ms_per_request": round(server_cpu_ms, 2),
        "load_average": os.getloadavg(),
        "per_query": {
            label: summarize(times) | {"source": sources[label]}
            for label, times in per_query.items()
        },
        "analyst_month_by_tenant": summarize(analyst)
        | {"source": sources["analyst: month by tenant"]},
        "ad_hoc_two_dimensions": {
            label: summarize(times) | {"source": sources[label]} for label, times in ad_hoc.items()
        },
        "baseline_scan": baselines,
    }


def _line(label: str, stats: dict[str, Any], note: str = "") -> str:
    return f"  {label:38s} p50 {stats['p50_ms']:7.2f}  p95 {stats['p95_ms']:7.2f}  {note}"


def print_result(result: dict[str, Any]) -> None:
    mix = result["mix"]
    load = ", ".join(f"{x:.1f}" for x in result["load_average"])
    print(f"\n{result['database']}: {mix['n']} requests, load average {load}")
    print(_line("mix, wall clock (ms)", mix, f"p99 {mix['p99_ms']}"))
    print(f"  server CPU per request, mean over the mix: {result['server_cpu_ms_per_request']} ms")
    for label, stats in result["per_query"].items():
        print(_line(label, stats, stats["source"]))
    print(_line("analyst: month by tenant", result["analyst_month_by_tenant"]))
    for label, stats in result["ad_hoc_two_dimensions"].items():
        print(_line(f"ad hoc: {label}", stats, stats["source"]))
    for line in result["baseline_scan"]:
        print(
            f"  scan baseline: {line['query']:30s} {line['scan_median_ms']:8.1f} ms vs "
            f"{line['api_median_ms']:6.2f} ms (x{line['ratio']}), "
            f"same numbers: {line['same_numbers']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--complaints", type=int, default=1_000_000)
    parser.add_argument("--sqlite-url", default=f"sqlite:///{OUT / 'trends.db'}")
    parser.add_argument("--postgres-url", default=os.environ.get("SAWT_TEST_POSTGRES_URL"))
    parser.add_argument("--postgres-schema", default="bench_trends")
    parser.add_argument("--budget-s", type=float, default=120.0, help="measuring time per database")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    if args.only in (None, "sqlite"):
        results.append(
            run_database("sqlite", args.sqlite_url, args.complaints, args.budget_s, args.seed)
        )
    if args.only in (None, "postgres"):
        if args.postgres_url:
            url = postgres_schema_url(args.postgres_url, args.postgres_schema)
            results.append(
                run_database("postgresql", url, args.complaints, args.budget_s, args.seed)
            )
        else:
            print("PostgreSQL skipped: set SAWT_TEST_POSTGRES_URL or --postgres-url")
    report = {"complaints": args.complaints, "cpu_count": os.cpu_count(), "results": results}
    (OUT / "trends.json").write_text(json.dumps(report, indent=2))
    for result in results:
        print_result(result)
    print(f"\nwritten to {OUT / 'trends.json'}")


if __name__ == "__main__":
    main()
