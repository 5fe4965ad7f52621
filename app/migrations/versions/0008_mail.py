"""Mail: the outbox, the tokens mailed to verify an address, reset a password or sign in,
verified addresses, each account's language and notification switches, and the tables of
"your photos are here".

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.core.indexes import create_index_sql, indexes_for

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def _lease_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", _WHEN, nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", _WHEN, nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
    ]


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("code_attempts", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.Column("used_at", _WHEN, nullable=True),
        _fk("account_tokens", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_tokens_token_hash")),
    )
    op.create_table(
        "guest_notices",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("due_at", _WHEN, nullable=True),
        sa.Column("last_sent_at", _WHEN, nullable=True),
        _fk("guest_notices", "event_id", "events"),
        _fk("guest_notices", "user_id", "users"),
        sa.PrimaryKeyConstraint("user_id", "event_id", name=op.f("pk_guest_notices")),
    )
    op.create_table(
        "notice_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("wanted", sa.Integer(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        *_lease_columns(),
        _fk("notice_runs", "event_id", "events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_runs")),
        sa.UniqueConstraint("event_id", name=op.f("uq_notice_runs_event_id")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("to_address", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=True),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column("unsubscribe_url", sa.String(length=512), nullable=True),
        sa.Column("photos_count", sa.Integer(), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("sent_at", _WHEN, nullable=True),
        *_lease_columns(),
        _fk("outbox", "event_id", "events"),
        _fk("outbox", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
    )
    op.create_table(
        "told_photos",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("told_at", _WHEN, nullable=False),
        _fk("told_photos", "event_id", "events"),
        _fk("told_photos", "photo_id", "photos"),
        _fk("told_photos", "user_id", "users"),
        sa.PrimaryKeyConstraint("user_id", "photo_id", name=op.f("pk_told_photos")),
    )
    for index in indexes_for("account_tokens", "guest_notices", "outbox", "told_photos", added_in="0008"):
        op.execute(create_index_sql(index))
    # Plain ADD COLUMNs (a constant default suffices on SQLite too): a batch rebuild of
    # ``users`` would drop its unique indexes on lower(username) and lower(email).
    op.add_column(
        "event_memberships", sa.Column("notify", sa.Boolean(), server_default=sa.true(), nullable=False)
    )
    op.add_column("users", sa.Column("email_verified_at", _WHEN, nullable=True))
    op.add_column("users", sa.Column("language", sa.String(length=8), server_default="fr", nullable=False))
    op.add_column("users", sa.Column("notify_photos", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("notify_photos")
        batch.drop_column("language")
        batch.drop_column("email_verified_at")
    with op.batch_alter_table("event_memberships") as batch:
        batch.drop_column("notify")
    for table in ("told_photos", "outbox", "notice_runs", "guest_notices", "account_tokens"):
        op.drop_table(table)
