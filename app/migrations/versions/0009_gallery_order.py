"""Galleries read in commit order: each face gets a per-event sequence number (``faces.seq``)
taken from ``event_galleries`` in the transaction that stores it, so a process that loaded an
event's faces up to a number has every face at or below it, whatever order workers commit in.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.core.indexes import create_index_sql, indexes_for

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_galleries",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("token", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_galleries_event_id_events"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_event_galleries")),
    )
    # Plain ADD COLUMN (SQLite needs a constant default for NOT NULL); existing faces keep
    # their id as their number, and each event's counter starts after its largest.
    op.add_column("faces", sa.Column("seq", sa.BigInteger(), server_default="0", nullable=False))
    op.execute("UPDATE faces SET seq = id")
    random_token = (
        "substr(md5(random()::text), 1, 16)"
        if op.get_bind().dialect.name == "postgresql"
        else "lower(hex(randomblob(8)))"
    )
    op.execute(
        "INSERT INTO event_galleries (event_id, seq, token) "
        f"SELECT event_id, max(id), {random_token} FROM faces GROUP BY event_id"
    )
    op.execute("DROP INDEX IF EXISTS ix_faces_event_id_id")
    for index in indexes_for("faces", added_in="0009"):
        op.execute(create_index_sql(index))


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_faces_event_id_seq")
    op.execute("CREATE INDEX IF NOT EXISTS ix_faces_event_id_id ON faces (event_id, id)")
    with op.batch_alter_table("faces") as batch:
        batch.drop_column("seq")
    op.drop_table("event_galleries")
