"""Reading complaints and recording analysts' label corrections."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.complaints.models import Complaint, LabelCorrection


class UnknownTopics(ValueError):
    pass


def get_complaint(
    session: Session, *, complaint_id: int, tenant_id: int | None
) -> Complaint | None:
    query = select(Complaint).where(Complaint.id == complaint_id)
    if tenant_id is not None:
        query = query.where(Complaint.tenant_id == tenant_id)
    return session.scalar(query)


def latest_correction(session: Session, *, complaint_id: int) -> LabelCorrection | None:
    return session.scalar(
        select(LabelCorrection)
        .where(LabelCorrection.complaint_id == complaint_id)
        .order_by(LabelCorrection.id.desc())
        .limit(1)
    )


def correct_labels(
    session: Session,
    *,
    complaint: Complaint,
    sentiment: str | None,
    topics: list[str] | None,
    known_topics: list[str],
    corrected_by: int,
    note: str | None = None,
) -> LabelCorrection:
    if topics is not None:
        unknown = sorted(set(topics) - set(known_topics))
        if unknown:
            raise UnknownTopics(
                f"unknown topic ids {unknown}; known: {', '.join(sorted(known_topics))}"
            )
    correction = LabelCorrection(
        complaint_id=complaint.id,
        sentiment=sentiment,
        topics=sorted(set(topics)) if topics is not None else None,
        corrected_by=corrected_by,
        note=note,
    )
    session.add(correction)
    session.commit()
    return correction
