"""The guest's visits of their photos page, per event: ``event_memberships.photos_seen_at``
(the last visit) and ``photos_new_since`` (the visit before it: photos matched after it are
"new since your last visit"). They replace a cookie that was per browser, not per guest.

Existing memberships start with no visit: nothing is "new" on their next visit.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("event_memberships") as batch:
        batch.add_column(sa.Column("photos_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("photos_new_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("event_memberships") as batch:
        batch.drop_column("photos_new_since")
        batch.drop_column("photos_seen_at")
