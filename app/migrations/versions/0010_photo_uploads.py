"""Direct uploads and content hashes: ``photos.content_hash`` (SHA-256 of the original) with
one photo per hash in an event among those not failed, and the ``uploading`` state of a photo
signed for a direct upload to the bucket (a string column: no schema change for the state).

Existing photos keep a null hash (no backfill): the unique index skips them, so they never
block a new upload; only photos uploaded from now on are recognized when sent again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.core.indexes import create_index_sql, indexes_for

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("photos", sa.Column("content_hash", sa.String(length=64), nullable=True))
    for index in indexes_for("photos", added_in="0010"):
        op.execute(create_index_sql(index))


def downgrade() -> None:
    # Rows signed but never completed have no file: they go, as the daily sweep would.
    op.execute("DELETE FROM photos WHERE status = 'uploading'")
    for index in indexes_for("photos", added_in="0010"):
        op.execute(f"DROP INDEX IF EXISTS {index.name}")
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("content_hash")
