"""The face provider that produced each face and selfie signature.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.add_column(sa.Column("provider", sa.String(length=16), server_default="local", nullable=False))
    with op.batch_alter_table("selfies") as batch:
        batch.add_column(sa.Column("provider", sa.String(length=16), server_default="local", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("selfies") as batch:
        batch.drop_column("provider")
    with op.batch_alter_table("faces") as batch:
        batch.drop_column("provider")
