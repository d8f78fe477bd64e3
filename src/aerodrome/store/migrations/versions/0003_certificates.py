"""Custom hostnames and their certificates.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "certificates",
        sa.Column("hostname", sa.String(length=253), nullable=False),
        sa.Column("app_name", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("fullchain", sa.Text(), nullable=False),
        sa.Column("key_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("acme_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("updated_at", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_name"], ["apps.name"], name=op.f("fk_certificates_app_name_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("hostname", name=op.f("pk_certificates")),
    )
    op.create_index(op.f("ix_certificates_app_name"), "certificates", ["app_name"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_certificates_app_name"), table_name="certificates")
    op.drop_table("certificates")
