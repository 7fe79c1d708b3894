"""trend cube: pre-aggregated counts for /v1/trends at 1M+ complaints

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNT_COLUMNS = ["count", "negative", "neutral", "positive"]


def upgrade() -> None:
    from service.trends.cube import rebuild_cube

    op.create_table(
        "trend_cube",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("value", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNT_COLUMNS),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_trend_cube_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "level", "value", "topic", "day", name=op.f("pk_trend_cube")
        ),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_trend_cube_topic",
        "trend_cube",
        ["tenant_id", "level", "topic", "value", "day", *COUNT_COLUMNS],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_trend_cube_value",
            "trend_cube",
            ["tenant_id", "level", "value", "topic", "day", *COUNT_COLUMNS],
        )
    session = Session(bind=op.get_bind())
    for (tenant_id,) in session.execute(sa.text("SELECT DISTINCT tenant_id FROM rollups")).all():
        rebuild_cube(session, tenant_id=tenant_id)
    session.flush()


def downgrade() -> None:
    op.drop_table("trend_cube")
