"""Each prediction's count intervals (per class, level, calibrated); NULL in the rows made before.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: existing rows keep NULL ("no interval"), and adding the column rewrites no row.
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("count_intervals", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("count_intervals")
