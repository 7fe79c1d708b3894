"""Batch routes: thin; parsing and storage live in `parsing` and `service`."""

from __future__ import annotations

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from service.api.deps import (
    ContextDep,
    ReaderDep,
    SessionDep,
    WriterDep,
    resolve_tenant,
    tenant_scope,
)
from service.audit.service import record_read
from service.batches import service
from service.batches.parsing import (
    ParsedUpload,
    UploadError,
    check_content_encoding,
    parse_upload,
)
from service.batches.schemas import (
    BatchAccepted,
    BatchStatusPublic,
    ResultRow,
    ResultsPage,
    RowErrorPublic,
)
from service.tenants.service import Principal

router = APIRouter(prefix="/v1/batches", tags=["batches"])

GENERIC_FILE_TYPES = {"application/octet-stream", "application/vnd.ms-excel", "text/plain"}
TYPE_BY_SUFFIX = {".json": "application/json", ".jsonl": "application/x-ndjson", ".csv": "text/csv"}
MAX_ERRORS_SHOWN = 1000
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"description": "Undecodable bytes or invalid JSON as a whole"},
    401: {"description": "Missing or invalid API key"},
    403: {"description": "The key's role may not post batches, or not for that tenant"},
    413: {"description": "Body larger than SAWT_MAX_UPLOAD_BYTES, or more rows than allowed"},
    415: {
        "description": "Content type is not JSON, JSONL or CSV, or the body is compressed "
        "(a Content-Encoding other than identity)"
    },
    422: {"description": "No valid complaint in the upload; `detail.errors` lists every row"},
}


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"body is {int(declared)} bytes; the limit is {limit} bytes: split the batch",
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"body exceeds the limit of {limit} bytes: split the batch",
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _upload_bytes(request: Request, limit: int) -> tuple[bytes, str | None]:
    """The upload's bytes and content type, from a raw body or a multipart `file` field."""
    body = await _read_body(request, limit)
    content_type = request.headers.get("content-type")
    if content_type and content_type.lower().startswith("multipart/form-data"):
        request._body = body  # let Starlette's form parser read the bytes we already hold
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                {"message": "multipart upload needs a `file` field", "errors": []},
            )
        part_type = upload.content_type
        if not part_type or part_type in GENERIC_FILE_TYPES:
            suffix = "." + (upload.filename or "").rsplit(".", 1)[-1].lower()
            part_type = TYPE_BY_SUFFIX.get(suffix, part_type)
        return await upload.read(), part_type
    return body, content_type


def _resolve_tenant(principal: Principal, session: SessionDep, tenant: str | None) -> int:
    """The read routes' rule (a ministry key never posts silently into its own tenant when it
    named another), plus: an admin must name the tenant it posts for."""
    tenant_ids, _name = resolve_tenant(session, principal, tenant)
    if not tenant_ids:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "an admin posting a batch must name the tenant: ?tenant=NAME",
        )
    return tenant_ids[0]


def _errors(upload: ParsedUpload) -> list[RowErrorPublic]:
    return [RowErrorPublic(row=e.row, field=e.field, message=e.message) for e in upload.errors]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchAccepted,
    responses=ERROR_RESPONSES,
    summary="Post a batch of complaints (JSON, JSONL or CSV; up to 100,000)",
    description=(
        "Stores the valid rows (redacted) and queues them for analysis; answers at once. Send "
        "the file as the body with its Content-Type (`application/json` with "
        '`{"complaints": [...]}`, `application/x-ndjson`, `text/csv`) or as a multipart `file` '
        "field. CSV encodings UTF-8 (with or without BOM), Windows-1256 and ISO-8859-6 are "
        "detected; `?encoding=` declares one; a CSV whose lines mix UTF-8 and one of these is "
        "read line by line, with a note in `errors`. Rows with errors are reported and skipped; "
        "valid rows of the same upload are kept. NUL and bidi control characters (U+202E...) are "
        "removed from every value. Compressed bodies are refused: a `Content-Encoding` other "
        "than `identity` (gzip, deflate, br...) answers 415, since an inflated body could exceed "
        "the size limit."
    ),
)
async def post_batch(
    request: Request,
    response: Response,
    principal: WriterDep,
    session: SessionDep,
    context: ContextDep,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", max_length=200, description="Retry-safe POST key"),
    ] = None,
    encoding: Annotated[
        str | None, Query(description="Declare the upload's encoding, e.g. cp1256", max_length=40)
    ] = None,
    tenant: Annotated[str | None, Query(description="Admin only: the tenant to post for")] = None,
) -> BatchAccepted:
    settings = context.settings
    try:
        check_content_encoding(request.headers.get("content-encoding"))
    except UploadError as exc:
        raise HTTPException(exc.status_code, exc.message) from exc
    tenant_id = _resolve_tenant(principal, session, tenant)
    if idempotency_key:
        earlier = service.find_by_idempotency_key(session, tenant_id=tenant_id, key=idempotency_key)
        if earlier is not None:
            return _accepted(earlier, replayed=True)
    body, content_type = await _upload_bytes(request, settings.max_upload_bytes)
    try:
        upload = await run_in_threadpool(
            parse_upload,
            body,
            content_type,
            max_rows=settings.max_batch_rows,
            declared_encoding=encoding,
        )
    except UploadError as exc:
        raise HTTPException(exc.status_code, exc.message) from exc
    if not upload.rows:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            {
                "message": "no valid complaint in the upload",
                "errors": [e.model_dump() for e in _errors(upload)[:MAX_ERRORS_SHOWN]],
                "errors_total": len(upload.errors),
            },
        )
    result = await run_in_threadpool(
        service.ingest_batch,
        session,
        tenant_id=tenant_id,
        upload=upload,
        source_format=upload.format,
        idempotency_key=idempotency_key,
    )
    if not result.replayed and context.runner is not None:
        context.runner.submit(result.batch.id)
    response.headers["Location"] = f"/v1/batches/{result.batch.id}"
    return _accepted(result.batch, replayed=result.replayed)


def _accepted(batch: service.Batch, *, replayed: bool) -> BatchAccepted:
    return BatchAccepted(
        id=batch.id,
        status=batch.status,
        rows_received=batch.rows_received,
        accepted=batch.accepted,
        rejected=batch.rejected,
        duplicates=batch.duplicates,
        errors=[RowErrorPublic(**e) for e in batch.errors],
        replayed=replayed,
    )


def _visible_batch(session: SessionDep, principal: Principal, batch_id: str) -> service.Batch:
    batch = service.get_batch(session, batch_id=batch_id, tenant_id=tenant_scope(principal))
    if batch is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"batch '{batch_id}' not found")
    return batch


@router.get(
    "/{batch_id}",
    response_model=BatchStatusPublic,
    responses={404: {"description": "No such batch for this tenant"}},
    summary="Status and progress of a batch",
)
def get_batch(batch_id: str, principal: ReaderDep, session: SessionDep) -> BatchStatusPublic:
    batch = _visible_batch(session, principal, batch_id)
    return BatchStatusPublic(
        id=batch.id,
        status=batch.status,
        created_at=batch.created_at,
        started_at=batch.started_at,
        finished_at=batch.finished_at,
        source_format=batch.source_format,
        rows_received=batch.rows_received,
        accepted=batch.accepted,
        rejected=batch.rejected,
        duplicates=batch.duplicates,
        progress=service.batch_progress(session, batch_id=batch.id),
        errors=[RowErrorPublic(**e) for e in batch.errors],
    )


CSV_COLUMNS = [
    "row", "complaint_id", "external_id", "status", "duplicate", "language", "script",
    "language_mix", "sentiment", "score_negative", "score_neutral", "score_positive", "topics",
    "redactions", "model_version", "error", "text",
]  # fmt: skip


def _csv(items: list[ResultRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for item in items:
        scores = item.sentiment.scores if item.sentiment else {}
        writer.writerow(
            [
                item.row, item.complaint_id, item.external_id or "", item.status, item.duplicate,
                item.language or "", item.script or "", "|".join(item.language_mix),
                item.sentiment.label if item.sentiment else "",
                scores.get("negative", ""), scores.get("neutral", ""), scores.get("positive", ""),
                "|".join(f"{t.id}:{t.score}" for t in item.topics), "|".join(item.redactions),
                item.model_version or "", item.error or "", item.text,
            ]
        )  # fmt: skip
    return buffer.getvalue()


@router.get(
    "/{batch_id}/results",
    response_model=ResultsPage,
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "JSON page, or CSV with Accept: text/csv",
        },
        404: {"description": "No such batch for this tenant"},
    },
    summary="Page through a batch's analyses (JSON, or CSV with `Accept: text/csv`)",
)
def get_results(
    batch_id: str,
    request: Request,
    principal: ReaderDep,
    session: SessionDep,
    context: ContextDep,
    after: Annotated[
        int, Query(ge=0, le=2**31 - 1, description="Return rows after this row number")
    ] = 0,
    limit: Annotated[int, Query(ge=1, description="Page size (max SAWT_RESULTS_PAGE_MAX)")] = 100,
) -> ResultsPage | Response:
    batch = _visible_batch(session, principal, batch_id)
    limit = min(limit, context.settings.results_page_max)
    items, next_after = service.batch_results(session, batch_id=batch.id, after=after, limit=limit)
    record_read(
        session, principal, "batch.results", f"batch:{batch.id}?after={after}",
        tenant_id=batch.tenant_id,
    )  # fmt: skip
    if "text/csv" in request.headers.get("accept", ""):
        headers = {"X-Next-After": str(next_after)} if next_after is not None else {}
        return Response(_csv(items), media_type="text/csv; charset=utf-8", headers=headers)
    return ResultsPage(items=items, next_after=next_after)
