"""The host agent's event stream: how far the control plane recorded each agent's events; and machine rows'
versions, which every write compares and sets.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_cursors",
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("agent", name=op.f("pk_agent_cursors")),
    )
    with op.batch_alter_table("machines") as batch:
        batch.add_column(sa.Column("row_version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.drop_column("row_version")
    op.drop_table("agent_cursors")
