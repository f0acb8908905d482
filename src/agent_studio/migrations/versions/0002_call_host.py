"""the server that runs a call

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08 02:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host_id", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_calls_host_status", ["host_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_host_status")
        batch_op.drop_column("host_id")
