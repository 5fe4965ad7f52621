"""Abuse resistance: join tokens for events, token versions for users, user ids never reused
on SQLite, emails compared NFKC-casefolded.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import secrets
import unicodedata
import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.core.indexes import create_index_sql, indexes_for

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fold(email: str) -> str:
    return unicodedata.normalize("NFKC", email).casefold()


def upgrade() -> None:
    # Batch operations on SQLite reflect the tables, and cannot carry the expression indexes
    # (lower(username), lower(email)) over: they warn, and the indexes are recreated below.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        _upgrade()


def _upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("join_token", sa.String(length=32), nullable=True))
    events = sa.table("events", sa.column("id", sa.Integer), sa.column("join_token", sa.String))
    for (event_id,) in bind.execute(sa.select(events.c.id)).all():
        bind.execute(
            events.update().where(events.c.id == event_id).values(join_token=secrets.token_urlsafe(16))
        )
    with op.batch_alter_table("events") as batch:
        batch.alter_column("join_token", existing_type=sa.String(length=32), nullable=False)
    for index in indexes_for("events", added_in="0004"):
        op.execute(create_index_sql(index))

    # On SQLite the table is rebuilt with AUTOINCREMENT (ids never reused); PostgreSQL's
    # sequences never reuse ids, and there a plain ALTER adds the column.
    sqlite = bind.dialect.name == "sqlite"
    with op.batch_alter_table(
        "users", recreate="always" if sqlite else "auto", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.add_column(sa.Column("token_version", sa.Integer(), server_default="0", nullable=False))
    # The rebuild cannot carry expression indexes (lower(username), lower(email)) over.
    for index in indexes_for("users"):
        op.execute(create_index_sql(index))

    users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String))
    rows = bind.execute(sa.select(users.c.id, users.c.email)).all()
    folds: dict[str, int] = {}
    for _, email in rows:
        folds[_fold(email)] = folds.get(_fold(email), 0) + 1
    for user_id, email in rows:
        folded = _fold(email)
        # Accounts whose emails only differ by Unicode case (made before this) keep them as they are.
        if folded != email and folds[folded] == 1:
            bind.execute(users.update().where(users.c.id == user_id).values(email=folded))


def downgrade() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        recreate = "always" if op.get_bind().dialect.name == "sqlite" else "auto"
        with op.batch_alter_table("users", recreate=recreate) as batch:
            batch.drop_column("token_version")
    for index in indexes_for("users"):
        op.execute(create_index_sql(index))
    op.drop_index("uq_events_join_token", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("join_token")
