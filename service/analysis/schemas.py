"""Schemas for synchronous analysis (nothing stored)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from service.batches.schemas import SentimentPublic, TopicPublic

MAX_TEXT_CHARS = 10_000


class AnalyzeItem(BaseModel):
    id: str | None = Field(default=None, max_length=200, description="Echoed back")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


PlainText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]


class AnalyzeRequest(BaseModel):
    texts: list[AnalyzeItem | PlainText] = Field(
        min_length=1,
        description="Up to 100 texts (strings or {id, text}); analysed at once, not stored",
    )


class AnalyzeResult(BaseModel):
    id: str | None
    text: str = Field(description="The redacted text")
    redactions: list[str]
    language: str = Field(description="ar | ary | ary-Latn | fr | en | zgh | und")
    script: str
    language_mix: list[str]
    sentiment: SentimentPublic
    topics: list[TopicPublic]
    model_version: str


class AnalyzeResponse(BaseModel):
    results: list[AnalyzeResult]
