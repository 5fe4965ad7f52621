"""The model that made each face descriptor and selfie template, and the durable job that
re-describes an event's faces when the recognizer changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every local descriptor stored before this revision was made by dlib's ResNet.
_BEFORE = "dlib-resnet-v1"


def upgrade() -> None:
    for table in ("faces", "selfies"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("model", sa.String(length=32), server_default=_BEFORE, nullable=False))
        op.execute(sa.text(f"UPDATE {table} SET model = 'azure' WHERE provider = 'azure'"))
    op.create_table(
        "face_reembeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=32), nullable=False),
        sa.Column("photos_total", sa.Integer(), nullable=False),
        sa.Column("photos_done", sa.Integer(), nullable=False),
        sa.Column("last_photo_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_face_reembeds_event_id_events"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_face_reembeds")),
    )


def downgrade() -> None:
    op.drop_table("face_reembeds")
    for table in ("selfies", "faces"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("model")
