"""`sawt`: serve the API, analyse files offline, manage keys, the database and models.

Training commands (`sawt train`, `sawt evaluate`) are plugged in through the `sawt.cli` entry
point group, so `service` never imports `training`.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.table import Table

from service.core.config import get_settings
from service.tenants.models import Role
from service.themes.commands import discover

app = typer.Typer(help="Sawt: citizens' complaints → signals.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
models_app = typer.Typer(help="Model registry: list, promote, roll back.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
err = Console(stderr=True)


def _session_factory() -> Any:
    from service.core.db import make_engine, make_session_factory
    from service.core.migrate import check_schema, upgrade

    settings = get_settings()
    engine = make_engine(settings.database_url)
    if settings.auto_migrate and settings.is_sqlite:
        upgrade(engine)
    check_schema(engine)
    return make_session_factory(engine)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes")] = 1,
) -> None:
    """Run the HTTP API (embedded defaults: SQLite file, in-process job runner)."""
    import uvicorn

    uvicorn.run(
        "service.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,  # the app logs JSON lines (service.core.logging), access lines included
        access_log=False,
    )


@app.command()
def worker(
    pool: Annotated[
        str, typer.Option(help="solo (recommended: chunks run in this process) | threads | prefork")
    ] = "solo",
    concurrency: Annotated[int, typer.Option(min=1, help="Threads/processes (not solo)")] = 1,
    encoder_threads: Annotated[
        int, typer.Option(min=0, help="Encoder threads (0: SAWT_ENCODER_THREADS or all cores)")
    ] = 0,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve this worker's Prometheus metrics on this port")
    ] = None,
    hostname: Annotated[str | None, typer.Option(help="Worker name (default: celery@host)")] = None,
) -> None:
    """Process batches from the broker (SAWT_JOB_RUNNER=celery); run one per core to scale."""
    from service.core.logging import configure_logging
    from service.jobs.celery_app import lower_cpu_priority, make_celery
    from service.jobs.tasks import run_worker

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    lower_cpu_priority(settings.worker_nice)  # before any thread starts: they inherit it
    code = run_worker(
        settings=settings,
        app=make_celery(settings),
        pool=pool,
        concurrency=concurrency,
        threads=encoder_threads,
        metrics_port=metrics_port,
        hostname=hostname,
    )
    raise typer.Exit(code)


# -- keys ------------------------------------------------------------------------------------
@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="ministry | analyst | dashboard | admin")],
    tenant: Annotated[
        str | None, typer.Option(help="Tenant (created if new); required for ministry")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label for the key")] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Expiry")] = None,
) -> None:
    """Create an API key; the key alone is printed on the last line."""
    from service.core.db import session_scope
    from service.tenants.service import KeyCreationError, create_key

    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    with session_scope(_session_factory()) as session:
        try:
            created = create_key(
                session,
                role=role,
                pepper=get_settings().secret_key,
                tenant_name=tenant,
                name=name,
                expires_at=expires,
            )
        except KeyCreationError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
    err.print(f"created {created.role.value} key #{created.key_id} for tenant {created.tenant}")
    print(created.plaintext)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefixes only: secrets are never stored)."""
    from service.core.db import session_scope
    from service.tenants.service import list_keys

    table = Table("id", "prefix", "role", "tenant", "name", "created", "expires", "revoked")
    with session_scope(_session_factory()) as session:
        for key, tenant in list_keys(session):
            table.add_row(
                str(key.id), key.prefix, key.role, tenant or "-", key.name or "-",
                f"{key.created_at:%Y-%m-%d}", str(key.expires_at or "-"),
                str(key.revoked_at or "-"),
            )  # fmt: skip
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (keys list)")],
) -> None:
    """Revoke a key at once."""
    from service.core.db import session_scope
    from service.tenants.service import revoke_key

    with session_scope(_session_factory()) as session:
        if not revoke_key(session, prefix=prefix):
            err.print(f"[red]error:[/red] no key with prefix {prefix}")
            raise typer.Exit(1)
    err.print(f"revoked {prefix}")


# -- db --------------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema of SAWT_DATABASE_URL to the code's head."""
    from service.core.db import make_engine
    from service.core.migrate import current_revision, upgrade

    engine = make_engine(get_settings().database_url)
    upgrade(engine)
    err.print(f"database at revision {current_revision(engine)}")


# -- retention -------------------------------------------------------------------------------
@app.command()
def purge(
    older_than: Annotated[
        int, typer.Option(min=1, help="Delete complaints received more than DAYS days ago")
    ],
    tenant: Annotated[str | None, typer.Option(help="Only this tenant (default: all)")] = None,
) -> None:
    """Delete old complaints with their analyses, topics, batch items and corrections;
    trend rollups are recounted for the tenants touched."""
    from service.complaints.retention import purge_complaints
    from service.core.db import session_scope
    from service.tenants.service import get_tenant_by_name

    cutoff = datetime.now(UTC) - timedelta(days=older_than)
    with session_scope(_session_factory()) as session:
        tenant_id = None
        if tenant is not None:
            found = get_tenant_by_name(session, name=tenant)
            if found is None:
                err.print(f"[red]error:[/red] no tenant named {tenant}")
                raise typer.Exit(1)
            tenant_id = found.id
        counts = purge_complaints(session, received_before=cutoff, tenant_id=tenant_id)
    err.print(f"purged complaints received before {cutoff:%Y-%m-%d %H:%M} UTC")
    print(
        f"complaints={counts.complaints} analyses={counts.analyses} "
        f"topic_rows={counts.topic_rows} batch_items={counts.batch_items} "
        f"label_corrections={counts.label_corrections} tenants={len(counts.tenants)}"
    )


# -- models ----------------------------------------------------------------------------------
def _registry() -> Any:
    from models.registry import Registry

    return Registry(get_settings().model_dir)


@models_app.command("list")
def models_list(task: Annotated[str | None, typer.Argument(help="Only this task")] = None) -> None:
    """Versions per task; the promoted one is starred."""
    registry = _registry()
    table = Table("task", "version", "kind", "created", "primary metric", "promoted")
    for name in [task] if task else registry.tasks():
        promoted = registry.promoted_version(name)
        for meta in registry.versions(name):
            score = meta.primary_score
            table.add_row(
                name, meta.version, meta.kind, f"{meta.created_at:%Y-%m-%d %H:%M}",
                f"{meta.primary_metric}={score:.4f}" if score is not None else "-",
                "*" if meta.version == promoted else "",
            )  # fmt: skip
    Console().print(table)


@models_app.command("promote")
def models_promote(
    task: str,
    version: str,
    force: Annotated[bool, typer.Option(help="Promote even if it scores lower")] = False,
) -> None:
    """Serve VERSION for TASK (refused if it scores below the current one, unless --force).
    Running APIs pick it up with POST /v1/models/reload."""
    from models.registry import ArtifactError

    try:
        _registry().promote(task, version, force=force)
    except ArtifactError as exc:
        err.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1) from exc
    err.print(f"{task}: promoted {version}")


@models_app.command("rollback")
def models_rollback(task: str) -> None:
    """Re-promote the version served before the current one."""
    from models.registry import ArtifactError

    try:
        previous = _registry().rollback(task)
    except ArtifactError as exc:
        err.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1) from exc
    err.print(f"{task}: rolled back to {previous}")


# -- analyze ---------------------------------------------------------------------------------
def _records(handle: TextIO, fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yields (row, record) or (row, error message), one input row at a time."""
    if fmt == "csv":
        reader = csv.DictReader(handle)
        for row, record in enumerate(reader, start=1):
            if None in record:
                yield row, "malformed CSV line: more fields than the header"
            else:
                yield row, dict(record)
        return
    for row, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield row, f"invalid JSON: {exc.msg} at column {exc.colno}"
            continue
        yield row, record if isinstance(record, dict) else "each line must be a JSON object"


def _analyze_stream(
    records: Iterator[tuple[int, dict[str, Any] | str]], out: TextIO, batch_size: int
) -> tuple[int, int]:
    from service.core.loading import load_pipeline

    pipeline = load_pipeline(get_settings(), _registry())
    written = failed = 0
    while chunk := list(islice(records, batch_size)):
        valid = []
        for row, record in chunk:
            if isinstance(record, str):
                out.write(json.dumps({"row": row, "id": None, "error": record}) + "\n")
                failed += 1
                continue
            text = str(record.get("text") or "").strip()
            rid = record.get("id", record.get("external_id"))
            if not text:
                out.write(
                    json.dumps({"row": row, "id": rid, "error": "field 'text' is empty"}) + "\n"
                )
                failed += 1
                continue
            valid.append((row, rid, text[:10_000]))
        for (row, rid, _), analysis in zip(
            valid, pipeline.analyze([t for _, _, t in valid]), strict=True
        ):
            line = {"row": row, "id": rid, "text": analysis.text, **analysis.to_dict()}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            written += 1
    return written, failed


@app.command()
def analyze(
    input_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL or CSV")],
    output: Annotated[Path, typer.Option("-o", "--output", help="JSONL output ('-': stdout)")],
    input_format: Annotated[
        str | None, typer.Option("--format", help="jsonl | csv (default: by extension)")
    ] = None,
    encoding: Annotated[str, typer.Option(help="Input encoding")] = "utf-8-sig",
    batch_size: Annotated[int, typer.Option(min=1, max=1024)] = 64,
) -> None:
    """Analyse a file offline, streaming: one JSONL line per input row (errors included)."""
    import rich.progress

    fmt = (input_format or input_path.suffix.lstrip(".")).lower()
    if fmt not in ("jsonl", "csv", "ndjson"):
        err.print(f"[red]error:[/red] unknown format '{fmt}': use --format jsonl or csv")
        raise typer.Exit(2)
    fmt = "jsonl" if fmt == "ndjson" else fmt
    out = sys.stdout if str(output) == "-" else output.open("w", encoding="utf-8")
    try:
        with rich.progress.open(
            input_path,
            "r",
            encoding=encoding,
            newline="",
            description="analysing",
            console=err,
            disable=not err.is_terminal,
        ) as handle:
            written, failed = _analyze_stream(_records(handle, fmt), out, batch_size)
    finally:
        if out is not sys.stdout:
            out.close()
    err.print(f"analysed {written} rows, {failed} errors → {output}")


app.command("discover")(discover)


def main() -> None:
    for plugin in entry_points(group="sawt.cli"):
        try:
            command = plugin.load()
        except ImportError as exc:  # e.g. a serving-only install without training's extras
            err.print(f"[yellow]warning:[/yellow] `sawt {plugin.name}` unavailable: {exc}")
            continue
        app.add_typer(command, name=plugin.name)
    app()


if __name__ == "__main__":
    main()
