"""Imports every domain's tables so `Base.metadata` (and Alembic) sees the whole schema."""

from service.audit.models import AuditEvent
from service.batches.models import Batch, BatchItem
from service.complaints.models import Analysis, AnalysisTopic, Complaint, LabelCorrection
from service.core.db import Base
from service.tenants.models import ApiKey, Tenant
from service.themes.models import ThemeRun
from service.topics.models import CustomTopic
from service.trends.cube import TrendCube
from service.trends.models import Rollup

__all__ = [
    "Analysis",
    "AnalysisTopic",
    "ApiKey",
    "AuditEvent",
    "Base",
    "Batch",
    "BatchItem",
    "Complaint",
    "CustomTopic",
    "LabelCorrection",
    "Rollup",
    "Tenant",
    "ThemeRun",
    "TrendCube",
]
