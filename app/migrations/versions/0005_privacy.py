"""Privacy: consent records, "not me" answers.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("consent_version", sa.String(length=16), nullable=True))
    op.create_table(
        "not_me",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], name=op.f("fk_not_me_photo_id_photos"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_not_me_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_not_me")),
        sa.UniqueConstraint("user_id", "photo_id", name=op.f("uq_not_me_user_id_photo_id")),
    )


def downgrade() -> None:
    op.drop_table("not_me")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("consent_version")
        batch.drop_column("consent_at")
