"""Complaint routes: read one complaint, correct its labels (analysts)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from sqlalchemy.orm import Session

from service.api.deps import AnalystDep, PipelineDep, ReaderDep, SessionDep, tenant_scope
from service.audit.service import record_read
from service.batches.schemas import SentimentPublic, TopicPublic
from service.batches.service import latest_analyses
from service.complaints import service
from service.complaints.models import Complaint
from service.complaints.schemas import (
    ComplaintPublic,
    LabelCorrectionIn,
    LabelCorrectionPublic,
)

router = APIRouter(prefix="/v1/complaints", tags=["complaints"])
# Ids are INTEGER columns: a larger number cannot exist and would overflow the driver (a 500).
ComplaintId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The complaint's id")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such complaint for this tenant"}
}


def _public(session: Session, complaint: Complaint) -> ComplaintPublic:
    analysis = latest_analyses(session, [complaint.id]).get(complaint.id)
    correction = service.latest_correction(session, complaint_id=complaint.id)
    return ComplaintPublic(
        id=complaint.id,
        external_id=complaint.external_id,
        batch_id=complaint.batch_id,
        text=complaint.text,
        redactions=list(complaint.redactions or []),
        channel=complaint.channel,
        service=complaint.service,
        region=complaint.region,
        received_at=complaint.received_at,
        metadata=dict(complaint.extra or {}),
        status=complaint.status,
        language=analysis.language if analysis else None,
        script=analysis.script if analysis else None,
        language_mix=list(analysis.language_mix) if analysis else [],
        sentiment=(
            SentimentPublic(label=analysis.sentiment, scores=analysis.sentiment_scores)
            if analysis
            else None
        ),
        topics=[TopicPublic(**t) for t in analysis.topics] if analysis else [],
        model_version=analysis.model_version if analysis else None,
        corrected_sentiment=correction.sentiment if correction else None,  # type: ignore[arg-type]
        corrected_topics=correction.topics if correction else None,
    )


@router.get("/{complaint_id}", response_model=ComplaintPublic, responses=NOT_FOUND)
def get_complaint(
    complaint_id: ComplaintId, principal: ReaderDep, session: SessionDep
) -> ComplaintPublic:
    complaint = service.get_complaint(
        session, complaint_id=complaint_id, tenant_id=tenant_scope(principal)
    )
    if complaint is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"complaint {complaint_id} not found")
    public = _public(session, complaint)
    record_read(
        session, principal, "complaint.read", f"complaint:{complaint.id}",
        tenant_id=complaint.tenant_id,
    )  # fmt: skip
    return public


@router.patch(
    "/{complaint_id}/labels",
    response_model=LabelCorrectionPublic,
    responses={**NOT_FOUND, 422: {"description": "Unknown topic id or empty correction"}},
    summary="Record an analyst's corrected sentiment and/or topics",
)
def correct_labels(
    complaint_id: ComplaintId,
    body: LabelCorrectionIn,
    principal: AnalystDep,
    session: SessionDep,
    pipeline: PipelineDep,
) -> LabelCorrectionPublic:
    complaint = service.get_complaint(session, complaint_id=complaint_id, tenant_id=None)
    if complaint is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"complaint {complaint_id} not found")
    try:
        correction = service.correct_labels(
            session,
            complaint=complaint,
            sentiment=body.sentiment,
            topics=body.topics,
            known_topics=list(pipeline.topic_model.labels_),
            corrected_by=principal.key_id,
            note=body.note,
        )
    except service.UnknownTopics as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return LabelCorrectionPublic(
        complaint_id=complaint.id,
        sentiment=correction.sentiment,  # type: ignore[arg-type]
        topics=correction.topics,
        corrected_by=correction.corrected_by,
        corrected_at=correction.corrected_at,
    )
