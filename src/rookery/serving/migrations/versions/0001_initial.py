"""The predictions table.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Plain JSON on PostgreSQL too (JSONB would reorder the keys of counts, which keep the model's class order).
_JSON = sa.JSON()


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("model_uri", sa.String(1000), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("model_alias", sa.String(255), nullable=True),
        sa.Column("counts", _JSON, nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("detections", _JSON, nullable=False),
        sa.Column("timings", _JSON, nullable=False),
        sa.Column("upload_ext", sa.String(8), nullable=True),
        sa.Column("has_annotated", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_predictions_created_at", table_name="predictions")
    op.drop_table("predictions")
