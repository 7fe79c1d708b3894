"""Analysts' label corrections, read from the service database and fed back into training.

A correction labels a stored complaint's (already redacted) text. Corrections are training data
only: ``split`` is always ``train``, and any correction whose prepared text equals a dev or test
text of the evaluation data is dropped (``exclude_texts``), so a corrected complaint can never
leak into a score. The latest correction per complaint and field wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from models.language import dominant_script

SOURCE = "corrections"


@dataclass(frozen=True)
class Correction:
    complaint_id: int
    text: str
    sentiment: str | None
    topics: list[str] | None
    corrected_at: datetime


def database_url() -> str:
    """``SAWT_DATABASE_URL`` (through the service's settings), default: the embedded SQLite."""
    from service.core.config import get_settings

    return get_settings().database_url


def load_corrections(url: str | None = None) -> list[Correction]:
    """Every correction joined to its complaint's redacted text, oldest first."""
    from sqlalchemy import select

    import service.core.tables  # noqa: F401  (every mapped table, for the joins' foreign keys)
    from service.complaints.models import Complaint, LabelCorrection
    from service.core.db import make_engine

    engine = make_engine(url or database_url())
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    LabelCorrection.complaint_id,
                    Complaint.text,
                    LabelCorrection.sentiment,
                    LabelCorrection.topics,
                    LabelCorrection.corrected_at,
                    LabelCorrection.id,
                )
                .join(Complaint, Complaint.id == LabelCorrection.complaint_id)
                .order_by(LabelCorrection.corrected_at, LabelCorrection.id)
            ).all()
    finally:
        engine.dispose()
    return [
        Correction(
            complaint_id=int(row.complaint_id),
            text=str(row.text),
            sentiment=row.sentiment,
            topics=list(row.topics) if row.topics is not None else None,
            corrected_at=row.corrected_at,
        )
        for row in rows
    ]


def _latest(corrections: Iterable[Correction], field: str) -> dict[int, Correction]:
    latest: dict[int, Correction] = {}
    for correction in corrections:
        if getattr(correction, field) is not None:
            previous = latest.get(correction.complaint_id)
            if previous is None or correction.corrected_at >= previous.corrected_at:
                latest[correction.complaint_id] = correction
    return latest


def corrections_frame(
    corrections: Iterable[Correction],
    task: str,
    *,
    exclude_texts: Iterable[str] = (),
    labels: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Training rows for `task` (``sentiment``: column ``label``; ``topics``: ``topics``).

    ``exclude_texts``: texts of every dev/test split (compared after ``training.fit``'s
    preparation), which corrections must never duplicate. ``labels``: allowed labels; others
    (a topic a tenant added, a typo) are dropped.
    """
    from training.fit import prepare_text

    if task not in ("sentiment", "topics"):
        raise ValueError(f"task must be 'sentiment' or 'topics', not {task!r}")
    field = "sentiment" if task == "sentiment" else "topics"
    allowed = set(labels) if labels is not None else None
    excluded = {prepare_text(text) for text in exclude_texts}
    rows = []
    for correction in _latest(corrections, field).values():
        if prepare_text(correction.text) in excluded:
            continue
        record: dict[str, object] = {
            "text": correction.text,
            "language": "und",
            "script": dominant_script(correction.text),
            "split": "train",
            "source": SOURCE,
            "complaint_id": correction.complaint_id,
        }
        if task == "sentiment":
            if allowed is not None and correction.sentiment not in allowed:
                continue
            record["label"] = correction.sentiment
        else:
            topics = [t for t in correction.topics or [] if allowed is None or t in allowed]
            if not topics:
                continue
            record["topics"] = topics
        rows.append(record)
    columns = [
        "text",
        "label" if task == "sentiment" else "topics",
        "language",
        "script",
        "split",
        "source",
        "complaint_id",
    ]
    return pd.DataFrame(rows, columns=columns)
