"""Schemas for the taxonomy and tenants' own topics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

TopicId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
Example = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000)]


class CustomTopicCreate(BaseModel):
    id: TopicId = Field(
        description="Topic id: lowercase letters, digits and _, e.g. `school_meals`"
    )
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    examples: list[Example] = Field(
        min_length=3,
        max_length=200,
        description="A handful of complaints that belong to the topic, in any language",
    )


class TopicPublic(BaseModel):
    id: str
    name: str
    source: str = Field(description="taxonomy (shipped model) or custom (this tenant's)")
    description: str | None = None
    examples: int = Field(default=0, description="How many examples define a custom topic")
    threshold: float | None = Field(default=None, description="Cosine threshold (custom topics)")
    created_at: datetime | None = None


class TopicList(BaseModel):
    topics: list[TopicPublic]
