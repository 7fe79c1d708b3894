"""POST /v1/analyze: up to SAWT_MAX_ANALYZE_TEXTS texts, analysed synchronously, not stored."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.text.normalize import strip_bidi_controls
from service.analysis.schemas import AnalyzeItem, AnalyzeRequest, AnalyzeResponse, AnalyzeResult
from service.api.deps import ContextDep, PipelineDep, PrincipalDep
from service.batches.parsing import UploadError, check_content_encoding
from service.batches.schemas import SentimentPublic, TopicPublic


class _PlainBodyRoute(APIRoute):
    """Refuses compressed bodies before FastAPI reads them, and answers validation errors
    without echoing the input: it may be a citizen's text, 10 MB long, or hold unpaired
    surrogates that cannot be encoded as UTF-8 (the default handler then fails with a 500)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                check_content_encoding(request.headers.get("content-encoding"))
            except UploadError as exc:
                raise HTTPException(exc.status_code, exc.message) from exc
            try:
                return await handler(request)
            except StarletteHTTPException as exc:  # FastAPI raises Starlette's own class
                if isinstance(exc.__cause__, RecursionError):  # its json.loads gave up
                    raise HTTPException(
                        status.HTTP_400_BAD_REQUEST, "invalid JSON: nested too deeply"
                    ) from exc
                raise
            except RequestValidationError as exc:
                detail = [
                    {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors()
                ]
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from exc

        return handle


router = APIRouter(prefix="/v1", tags=["analysis"], route_class=_PlainBodyRoute)


@router.post(
    "/analyze",
    response_model=AnalyzeResponse,
    responses={
        413: {"description": "More texts than SAWT_MAX_ANALYZE_TEXTS"},
        415: {"description": "Compressed body (a Content-Encoding other than identity)"},
    },
    summary="Analyse a few texts now (nothing is stored)",
    description=(
        "Each text is redacted, then analysed; the answer carries the redacted text without "
        "bidi control characters (U+202E...). The body must not be compressed: a "
        "`Content-Encoding` other than `identity` answers 415. Validation errors name the "
        "text (`loc`: body, texts, index) without echoing it."
    ),
)
def analyze(
    body: AnalyzeRequest, _principal: PrincipalDep, pipeline: PipelineDep, context: ContextDep
) -> AnalyzeResponse:
    limit = context.settings.max_analyze_texts
    if len(body.texts) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{len(body.texts)} texts; at most {limit} per call: post a batch for more",
        )
    items = [t if isinstance(t, AnalyzeItem) else AnalyzeItem(text=t) for t in body.texts]
    analyses = pipeline.analyze([strip_bidi_controls(item.text) for item in items])
    return AnalyzeResponse(
        results=[
            AnalyzeResult(
                id=item.id,
                text=a.text,
                redactions=a.redactions,
                language=a.language,
                script=a.script,
                language_mix=a.language_mix,
                sentiment=SentimentPublic(label=a.sentiment, scores=a.sentiment_scores),
                topics=[TopicPublic(id=t.id, score=t.score) for t in a.topics],
                model_version=a.model_version,
            )
            for item, a in zip(items, analyses, strict=True)
        ]
    )
