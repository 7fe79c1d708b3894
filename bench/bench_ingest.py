"""Ingest throughput: complaints/second accepted by `POST /v1/batches`, 10k-complaint batches.

A real `uvicorn` server (1 or 2 processes) on loopback, concurrent clients posting pre-built
10,000-complaint JSON bodies, on SQLite and PostgreSQL; redaction included. Same-run baselines
swap only the storage step inside the server: `orm-bulk` (the foundation's ORM executemany with
RETURNING) and `orm-row` (row-by-row ORM inserts, a flush per row). The server is started with
no job runner, so only the request path is measured. Redaction and parsing are also timed alone,
in this process, to show what bounds the request path.

    python -m bench.bench_ingest --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python -m bench.bench_ingest --quick            # fewer configurations, fewer batches

Each configuration stops after `--batches` requests or `--seconds`, whichever comes first.
Results go to stdout and, with `--out`, to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_DIR = REPO_ROOT / "datasets" / "seed_topics"
PII_SNIPPETS = (
    " Appelez-moi au 06 12 34 56 78.",
    " email: karim.benali@example.ma",
    " CIN AB123456",
    " رقم الهاتف 0661234567",
    " RIB 011 780 0000123456789012 34",
)
SERVICES = ("civil_registry", "health", "tax", "justice", "water_power", "transport")
CHANNELS = ("web", "app", "phone", "counter", "email")
REGIONS = ("Casablanca-Settat", "Rabat-Salé-Kénitra", "Fès-Meknès", "Marrakech-Safi", "Oriental")


# --- shared helpers (the other benchmarks import these) ---------------------------------------


def seed_texts() -> list[str]:
    """Project-authored complaint texts in every language the service reads."""
    texts = []
    for path in sorted(SEED_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    texts.append(str(json.loads(line)["text"]))
                except (ValueError, KeyError):
                    continue
    return texts or ["Le guichet est fermé depuis une semaine."]


def complaint_rows(n: int, prefix: str, rng: random.Random, texts: list[str]) -> list[dict]:
    """`n` complaints shaped like an export: id, text (10% with personal data), dimensions."""
    rows = []
    for i in range(n):
        text = rng.choice(texts)
        if rng.random() < 0.1:
            text += rng.choice(PII_SNIPPETS)
        rows.append(
            {
                "id": f"{prefix}-{i}",
                "text": text,
                "channel": rng.choice(CHANNELS),
                "service": rng.choice(SERVICES),
                "region": rng.choice(REGIONS),
            }
        )
    return rows


def batch_body(n: int, prefix: str, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return json.dumps({"complaints": complaint_rows(n, prefix, rng, seed_texts())}).encode()


# `sawt` without its plugin commands (training), so a broken plugin cannot stop a benchmark.
SAWT = [sys.executable, "-c", "from service.cli import app; app()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mib(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a live process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a live process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def children(pid: int) -> list[int]:
    try:
        path = Path(f"/proc/{pid}/task/{pid}/children")
        return [int(p) for p in path.read_text().split()]
    except OSError:
        return []


def own_peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A throwaway schema, dropped afterwards (as the tests do)."""
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:10]}"
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


@contextmanager
def database(kind: str, postgres_url: str | None, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{directory / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        return
    if not postgres_url:
        raise SystemExit("--postgres-url (or SAWT_TEST_POSTGRES_URL) is needed for postgres")
    with postgres_schema(postgres_url) as url:
        yield url


def prepare(database_url: str, tenants: list[str]) -> dict[str, str]:
    """Migrate and create one ministry key per tenant; returns tenant -> key."""
    from service.core.config import Environment, Settings
    from service.core.db import make_engine, make_session_factory, session_scope
    from service.core.migrate import upgrade
    from service.tenants.models import Role
    from service.tenants.service import create_key

    settings = Settings(environment=Environment.test, database_url=database_url)
    engine = make_engine(database_url)
    upgrade(engine)
    keys = {}
    with session_scope(make_session_factory(engine)) as session:
        for tenant in tenants:
            created = create_key(
                session, role=Role.ministry, pepper=settings.secret_key, tenant_name=tenant
            )
            keys[tenant] = created.plaintext
    engine.dispose()
    return keys


class Server:
    """A child process serving HTTP; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, args: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log
        handle = log.open("wb")
        self.proc = subprocess.Popen(
            args, cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
        handle.close()

    def wait_ready(self, timeout: float = 120.0, path: str = "/readyz") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.base + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(
            f"server not ready after {timeout}s: {self.log_path.read_text()[-3000:]}"
        )

    def peak_rss(self) -> dict[str, float | None]:
        """Peak RSS of the server process and of each of its children (uvicorn workers)."""
        peaks = {"main": peak_rss_mib(self.proc.pid)}
        for i, child in enumerate(children(self.proc.pid)):
            peaks[f"worker-{i}"] = peak_rss_mib(child)
        return peaks

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[index]


# --- baselines swapped into the server --------------------------------------------------------


def _orm_bulk_insert_batch(session: Any, tenant_id: int, upload: Any, source_format: str,
                           idempotency_key: str | None) -> Any:  # fmt: skip
    """The foundation's storage step: ORM executemany with RETURNING for ids."""
    from dataclasses import asdict as as_dict

    from sqlalchemy import insert

    from models.text.redact import redact
    from service.batches import service
    from service.batches.models import Batch, BatchItem, BatchStatus
    from service.complaints.models import Complaint, ComplaintStatus
    from service.core.db import utcnow

    batch_id = uuid.uuid4().hex
    external_ids = [c.external_id for _, c in upload.rows if c.external_id is not None]
    existing = service._existing_ids(session, tenant_id, external_ids)
    new_rows = [(row, c) for row, c in upload.rows if c.external_id not in existing]
    rejected_rows = {e.row for e in upload.errors if e.row is not None}
    batch = Batch(
        id=batch_id, tenant_id=tenant_id, status=BatchStatus.queued.value,
        source_format=source_format, rows_received=len(upload.rows) + len(rejected_rows),
        accepted=len(upload.rows), rejected=len(rejected_rows),
        duplicates=len(upload.rows) - len(new_rows),
        errors=[as_dict(e) for e in upload.errors[: service.MAX_STORED_ERRORS]],
        idempotency_key=idempotency_key,
    )  # fmt: skip
    session.add(batch)
    session.flush()
    payload = []
    for _, c in new_rows:
        redacted = redact(c.text)
        now = utcnow()
        payload.append(
            {
                "tenant_id": tenant_id, "batch_id": batch_id, "external_id": c.external_id,
                "text": redacted.text, "redactions": redacted.kinds, "channel": c.channel,
                "service": c.service, "region": c.region, "received_at": c.received_at or now,
                "created_at": now, "extra": dict(c.metadata),
                "status": ComplaintStatus.pending.value,
            }
        )  # fmt: skip
    new_ids = (
        list(
            session.scalars(
                insert(Complaint).returning(Complaint.id, sort_by_parameter_order=True), payload
            )
        )
        if payload
        else []
    )
    id_by_row = {row: cid for (row, _), cid in zip(new_rows, new_ids, strict=True)}
    items = [
        {"batch_id": batch_id, "row": row, "complaint_id": id_by_row[row]}
        if row in id_by_row
        else {
            "batch_id": batch_id,
            "row": row,
            "complaint_id": existing[c.external_id],
            "duplicate": True,
        }
        for row, c in upload.rows
    ]
    if items:
        session.execute(insert(BatchItem), items)
    return batch


def _orm_row_insert_batch(session: Any, tenant_id: int, upload: Any, source_format: str,
                          idempotency_key: str | None) -> Any:  # fmt: skip
    """Row by row: one ORM object and one flush per complaint (the naive way)."""
    from models.text.redact import redact
    from service.batches import service
    from service.batches.models import Batch, BatchItem, BatchStatus
    from service.complaints.models import Complaint, ComplaintStatus

    batch_id = uuid.uuid4().hex
    external_ids = [c.external_id for _, c in upload.rows if c.external_id is not None]
    existing = service._existing_ids(session, tenant_id, external_ids)
    batch = Batch(
        id=batch_id, tenant_id=tenant_id, status=BatchStatus.queued.value,
        source_format=source_format, rows_received=len(upload.rows), accepted=len(upload.rows),
        rejected=0, duplicates=sum(1 for _, c in upload.rows if c.external_id in existing),
        errors=[], idempotency_key=idempotency_key,
    )  # fmt: skip
    session.add(batch)
    session.flush()
    for row, c in upload.rows:
        if c.external_id in existing:
            session.add(BatchItem(batch_id=batch_id, row=row, complaint_id=existing[c.external_id],
                                  duplicate=True))  # fmt: skip
            continue
        redacted = redact(c.text)
        complaint = Complaint(
            tenant_id=tenant_id, batch_id=batch_id, external_id=c.external_id,
            text=redacted.text, redactions=redacted.kinds, channel=c.channel, service=c.service,
            region=c.region, extra=dict(c.metadata), status=ComplaintStatus.pending.value,
        )  # fmt: skip
        if c.received_at is not None:
            complaint.received_at = c.received_at
        session.add(complaint)
        session.flush()
        session.add(BatchItem(batch_id=batch_id, row=row, complaint_id=complaint.id))
    session.flush()
    return batch


STRATEGIES: dict[str, Callable[..., Any] | None] = {
    "copy": None,  # the service as shipped: COPY on PostgreSQL, executemany on SQLite
    "orm-bulk": _orm_bulk_insert_batch,
    "orm-row": _orm_row_insert_batch,
}


def make_app() -> Any:
    """uvicorn factory for the benchmark server: the real app, storage step per env var."""
    from service.batches import service
    from service.core.config import get_settings
    from service.main import create_app

    replacement = STRATEGIES[os.environ.get("BENCH_INGEST_STRATEGY", "copy")]
    if replacement is not None:
        service._insert_batch = replacement
    return create_app(get_settings(), start_runner=False)


# --- the benchmark ----------------------------------------------------------------------------


@dataclass
class IngestResult:
    database: str
    strategy: str
    server_processes: int
    clients: int
    batches: int
    complaints: int
    seconds: float
    complaints_per_s: float
    request_p50_s: float
    request_p95_s: float
    server_peak_rss_mib: dict[str, float | None]
    client_peak_rss_mib: float
    load_average: list[float] = field(default_factory=list)


def run_ingest(
    *,
    kind: str,
    strategy: str,
    processes: int,
    clients: int,
    batches: int,
    seconds: float,
    batch_size: int,
    postgres_url: str | None,
    workdir: Path,
) -> IngestResult:
    with database(kind, postgres_url, workdir) as url:
        keys = prepare(url, ["bench"])
        port = free_port()
        env = {
            **os.environ,
            "SAWT_DATABASE_URL": url,
            "SAWT_ENVIRONMENT": "test",
            "SAWT_AUTO_MIGRATE": "false",
            "SAWT_LOG_LEVEL": "WARNING",
            "BENCH_INGEST_STRATEGY": strategy,
        }
        args = [
            sys.executable, "-m", "uvicorn", "bench.bench_ingest:make_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(processes),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        bodies = [batch_body(batch_size, f"{strategy}-{i}", seed=i) for i in range(batches + 1)]
        headers = {"Authorization": f"Bearer {keys['bench']}", "Content-Type": "application/json"}
        with Server(args, env, port, workdir / f"ingest-{kind}-{strategy}.log") as server:
            server.wait_ready()
            with httpx.Client(base_url=server.base, timeout=600) as client:  # warm-up
                assert client.post("/v1/batches", content=bodies[0], headers=headers).is_success
            latencies: list[float] = []
            accepted = 0
            deadline = time.monotonic() + seconds

            def post(body: bytes) -> tuple[float, int]:
                if time.monotonic() > deadline:
                    return 0.0, 0
                with httpx.Client(base_url=server.base, timeout=600) as client:
                    started = time.perf_counter()
                    response = client.post("/v1/batches", content=body, headers=headers)
                    elapsed = time.perf_counter() - started
                response.raise_for_status()
                return elapsed, int(response.json()["accepted"])

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=clients) as pool:
                for elapsed, count in pool.map(post, bodies[1:]):
                    if count:
                        latencies.append(elapsed)
                        accepted += count
            wall = time.perf_counter() - started
            peaks = server.peak_rss()
    return IngestResult(
        database=kind,
        strategy=strategy,
        server_processes=processes,
        clients=clients,
        batches=len(latencies),
        complaints=accepted,
        seconds=round(wall, 2),
        complaints_per_s=round(accepted / wall, 1),
        request_p50_s=round(statistics.median(latencies), 3) if latencies else float("nan"),
        request_p95_s=round(percentile(latencies, 0.95), 3),
        server_peak_rss_mib=peaks,
        client_peak_rss_mib=own_peak_rss_mib(),
        load_average=load_average(),
    )


def stage_costs(batch_size: int) -> dict[str, float]:
    """Single-thread cost of the CPU stages of ingest, per second, in this process."""
    from models.text.redact import redact
    from service.batches.parsing import parse_upload

    body = batch_body(batch_size, "stage", seed=99)
    started = time.perf_counter()
    upload = parse_upload(body, "application/json")
    parse = time.perf_counter() - started
    texts = [c.text for _, c in upload.rows]
    started = time.perf_counter()
    for text in texts:
        redact(text)
    redaction = time.perf_counter() - started
    return {
        "parse_complaints_per_s": round(len(texts) / parse, 1),
        "redact_complaints_per_s": round(len(texts) / redaction, 1),
        "load_average": load_average(),  # type: ignore[dict-item]
    }


def store_cost(kind: str, postgres_url: str | None, workdir: Path, batch_size: int) -> float:
    """`ingest_batch` alone, redaction replaced by the identity: complaints/s (best of 3)."""
    from unittest import mock

    from models.text.redact import RedactionResult
    from service.batches import service
    from service.batches.parsing import parse_upload
    from service.core.db import make_engine, make_session_factory

    best = float("inf")
    with database(kind, postgres_url, workdir) as url:
        prepare(url, ["bench"])
        engine = make_engine(url)
        factory = make_session_factory(engine)
        with mock.patch.object(service, "redact", lambda text: RedactionResult(text, ())):
            for i in range(3):
                upload = parse_upload(
                    batch_body(batch_size, f"store-{i}", seed=i), "application/json"
                )
                with factory() as session:
                    started = time.perf_counter()
                    service.ingest_batch(session, tenant_id=1, upload=upload, source_format="json")
                    best = min(best, time.perf_counter() - started)
        engine.dispose()
    return round(batch_size / best, 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres-url", default=os.environ.get("SAWT_TEST_POSTGRES_URL"))
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--strategies", default="copy,orm-bulk,orm-row")
    parser.add_argument("--processes", default="1,2", help="uvicorn processes to try (copy)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0, help="per configuration")
    parser.add_argument("--quick", action="store_true", help="3 batches, 2 clients")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.clients = 3, 2
    results: dict[str, Any] = {"stages": stage_costs(args.batch_size), "runs": []}
    with tempfile.TemporaryDirectory(prefix="sawt-bench-") as tmp:
        for kind in args.databases.split(","):
            results["stages"][f"store_only_{kind}_complaints_per_s"] = store_cost(
                kind, args.postgres_url, Path(tmp), args.batch_size
            )
        print(json.dumps({"stages": results["stages"]}), flush=True)
        for kind in args.databases.split(","):
            for strategy in args.strategies.split(","):
                counts = [int(p) for p in args.processes.split(",")] if strategy == "copy" else [1]
                for processes in counts:
                    batches = args.batches if strategy != "orm-row" else max(2, args.batches // 4)
                    result = run_ingest(
                        kind=kind, strategy=strategy, processes=processes, clients=args.clients,
                        batches=batches,
                        seconds=args.seconds, batch_size=args.batch_size,
                        postgres_url=args.postgres_url, workdir=Path(tmp),
                    )  # fmt: skip
                    results["runs"].append(asdict(result))
                    print(json.dumps(asdict(result)), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
