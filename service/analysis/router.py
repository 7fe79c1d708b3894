"""POST /v1/analyze: up to SAWT_MAX_ANALYZE_TEXTS texts, analysed synchronously, not stored."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from service.analysis.schemas import AnalyzeItem, AnalyzeRequest, AnalyzeResponse, AnalyzeResult
from service.api.deps import ContextDep, PipelineDep, PrincipalDep
from service.batches.schemas import SentimentPublic, TopicPublic

router = APIRouter(prefix="/v1", tags=["analysis"])


@router.post(
    "/analyze",
    response_model=AnalyzeResponse,
    responses={413: {"description": "More texts than SAWT_MAX_ANALYZE_TEXTS"}},
    summary="Analyse a few texts now (nothing is stored)",
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
    analyses = pipeline.analyze([item.text for item in items])
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
