"""Privacy: consent records, "not me" answers, selfie changes, event retention, durable
event purges and erasures at the face provider.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _job_columns() -> list[sa.Column[object]]:
    """The lease columns of a durable job (``app.jobs.models.LeasedJob``)."""
    return [
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
    ]


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
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("retention_days", sa.Integer(), server_default="30", nullable=False))
        batch.add_column(sa.Column("deleting_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "event_purges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("photos_deleted", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        *_job_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_purges")),
    )
    op.create_table(
        "selfie_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_selfie_changes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_selfie_changes")),
    )
    op.create_table(
        "provider_erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("what", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("signatures", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        *_job_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_erasures")),
    )
    # The daily sweep that queues the retention purges (a job that re-queues itself).
    purges = sa.table(
        "event_purges",
        sa.column("reason", sa.String),
        sa.column("photos_deleted", sa.Integer),
        sa.column("created_at", sa.DateTime),
        sa.column("status", sa.String),
        sa.column("attempts", sa.Integer),
    )
    op.bulk_insert(
        purges,
        [{"reason": "sweep", "photos_deleted": 0, "created_at": datetime.now(UTC), "status": "pending", "attempts": 0}],
    )


def downgrade() -> None:
    op.drop_table("provider_erasures")
    op.drop_table("selfie_changes")
    op.drop_table("event_purges")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("purged_at")
        batch.drop_column("deleting_at")
        batch.drop_column("retention_days")
    op.drop_table("not_me")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("consent_version")
        batch.drop_column("consent_at")
