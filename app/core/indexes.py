"""The performance indexes: ONE definition used by the models (and so the migrations)
and by the standalone ``add_performance_indexes.py`` a DBA runs on a live database.

Each index is derived from a hot query, named in ``serves``. Columns are column names
or ``lower(column)`` expressions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Index, MetaData, func, text
from sqlalchemy.sql.elements import ColumnElement


@dataclass(frozen=True)
class IndexDef:
    name: str
    table: str
    columns: tuple[str, ...]
    serves: str
    query: str  # the hot query it serves, with :named parameters (EXPLAIN, probes, benchmarks)
    unique: bool = False
    added_in: str | None = None  # the migration that creates it, when not the table's first
    where: str | None = None  # a partial index: the rows it holds (SQL, both dialects)

    def sql_columns(self) -> str:
        return ", ".join(self.columns)


# Parameter values for the queries above; any existing or missing row works for EXPLAIN.
QUERY_PARAMS = {
    "code": "SUMMER-7K2Q",
    "token": "x",
    "v": "alice",
    "user_id": 1,
    "event_id": 1,
    "photo_id": 1,
    "after": 0,
    "hash": "0" * 64,
}

PERFORMANCE_INDEXES: tuple[IndexDef, ...] = (
    IndexDef(
        "uq_events_code",
        "events",
        ("code",),
        "check-event-code, register: event by code",
        "SELECT id, is_open FROM events WHERE code = :code",
        unique=True,
    ),
    IndexDef(
        "uq_events_join_token",
        "events",
        ("join_token",),
        "join links (/e/<token>): event by join token",
        "SELECT code FROM events WHERE join_token = :token",
        unique=True,
        added_in="0004",
    ),
    IndexDef(
        "uq_users_username_lower",
        "users",
        ("lower(username)",),
        "login, availability: user by username",
        "SELECT id FROM users WHERE lower(username) = :v",
        unique=True,
    ),
    IndexDef(
        "uq_users_email_lower",
        "users",
        ("lower(email)",),
        "login, availability: user by email",
        "SELECT id FROM users WHERE lower(email) = :v",
        unique=True,
    ),
    IndexDef(
        "uq_event_memberships_user_id_event_id",
        "event_memberships",
        ("user_id", "event_id"),
        "a guest's events (/api/me, my-photos), one membership per pair",
        "SELECT event_id FROM event_memberships WHERE user_id = :user_id",
        unique=True,
    ),
    IndexDef(
        "ix_event_memberships_event_id",
        "event_memberships",
        ("event_id",),
        "an event's guests (counts, matching a new photo)",
        "SELECT count(*) FROM event_memberships WHERE event_id = :event_id",
    ),
    IndexDef(
        "ix_face_matches_user_id_distance",
        "face_matches",
        ("user_id", "distance"),
        "my-photos best first; deleting a guest's matches when a new selfie replaces the old",
        "SELECT photo_id, distance FROM face_matches WHERE user_id = :user_id ORDER BY distance",
    ),
    IndexDef(
        "ix_face_matches_photo_id",
        "face_matches",
        ("photo_id",),
        "the guests matched in a photo",
        "SELECT user_id FROM face_matches WHERE photo_id = :photo_id",
    ),
    IndexDef(
        "ix_face_matches_event_id_user_id",
        "face_matches",
        ("event_id", "user_id"),
        "my-photos for one event",
        "SELECT photo_id FROM face_matches WHERE event_id = :event_id AND user_id = :user_id",
    ),
    IndexDef(
        "ix_faces_photo_id",
        "faces",
        ("photo_id",),
        "a photo's faces",
        "SELECT id FROM faces WHERE photo_id = :photo_id",
    ),
    IndexDef(
        "ix_faces_event_id_seq",
        "faces",
        ("event_id", "seq"),
        "loading an event's face gallery (the faces committed since the last load)",
        "SELECT id, photo_id FROM faces WHERE event_id = :event_id AND seq > :after ORDER BY seq",
        added_in="0009",
    ),
    IndexDef(
        "ix_photos_event_id_status",
        "photos",
        ("event_id", "status"),
        "per-event indexing progress",
        "SELECT status, count(*) FROM photos WHERE event_id = :event_id GROUP BY status",
    ),
    IndexDef(
        "ix_photos_status_id",
        "photos",
        ("status", "id"),
        "face workers claiming the next photo",
        "SELECT id FROM photos WHERE status = 'pending' ORDER BY id LIMIT 1",
    ),
    IndexDef(
        "ix_selfies_status_id",
        "selfies",
        ("status", "id"),
        "face workers claiming the next selfie",
        "SELECT id FROM selfies WHERE status = 'pending' ORDER BY id LIMIT 1",
    ),
    IndexDef(
        "ix_selfies_user_id",
        "selfies",
        ("user_id",),
        "a guest's current selfie",
        "SELECT id FROM selfies WHERE user_id = :user_id ORDER BY id DESC LIMIT 1",
    ),
    IndexDef(
        "ix_outbox_status_id",
        "outbox",
        ("status", "id"),
        "face workers claiming the next mail to send",
        "SELECT id FROM outbox WHERE status = 'pending' ORDER BY id LIMIT 1",
        added_in="0008",
    ),
    IndexDef(
        "ix_outbox_event_id_id",
        "outbox",
        ("event_id", "id"),
        "the notifications of an event on its organizer's dashboard",
        "SELECT id, status FROM outbox WHERE event_id = :event_id ORDER BY id DESC LIMIT 20",
        added_in="0008",
    ),
    IndexDef(
        "ix_outbox_user_id",
        "outbox",
        ("user_id",),
        "a guest's messages: export, erasure",
        "SELECT id FROM outbox WHERE user_id = :user_id",
        added_in="0008",
    ),
    IndexDef(
        "ix_account_tokens_user_id",
        "account_tokens",
        ("user_id",),
        "a new link replaces the account's older ones; export; erasure",
        "DELETE FROM account_tokens WHERE user_id = :user_id AND purpose = 'verify'",
        added_in="0008",
    ),
    IndexDef(
        "ix_guest_notices_event_id_due_at",
        "guest_notices",
        ("event_id", "due_at"),
        "the notice run taking an event's guests whose message is due",
        "SELECT user_id FROM guest_notices WHERE event_id = :event_id AND due_at <= '2026-01-01' LIMIT 500",
        added_in="0008",
    ),
    IndexDef(
        "ix_told_photos_photo_id",
        "told_photos",
        ("photo_id",),
        "deleting a photo (its rows go by foreign key)",
        "SELECT user_id FROM told_photos WHERE photo_id = :photo_id",
        added_in="0008",
    ),
    IndexDef(
        "ix_told_photos_event_id_user_id",
        "told_photos",
        ("event_id", "user_id"),
        "a guest taken out of an event; deleting an event (its rows go by foreign key)",
        "SELECT photo_id FROM told_photos WHERE event_id = :event_id AND user_id = :user_id",
        added_in="0008",
    ),
    IndexDef(
        "uq_photos_event_id_content_hash",
        "photos",
        ("event_id", "content_hash"),
        "an upload's duplicate in its event (content hash); one photo per hash among those not failed",
        "SELECT id, status FROM photos WHERE event_id = :event_id AND content_hash = :hash"
        " AND status <> 'failed'",
        unique=True,
        added_in="0010",
        where="content_hash IS NOT NULL AND status <> 'failed'",
    ),
)

_LOWER = re.compile(r"^lower\((\w+)\)$")


def _expression(metadata: MetaData, table: str, column: str) -> ColumnElement[object]:
    t = metadata.tables[table]
    m = _LOWER.match(column)
    return func.lower(t.c[m.group(1)]) if m else t.c[column]


def attach_to_metadata(metadata: MetaData) -> None:
    """Declare every index on the tables (idempotent), so models and migrations match."""
    for d in PERFORMANCE_INDEXES:
        table = metadata.tables[d.table]
        existing = {i.name for i in table.indexes} | {c.name for c in table.constraints}
        if d.name not in existing:
            where: dict[str, Any] = (
                {"sqlite_where": text(d.where), "postgresql_where": text(d.where)} if d.where else {}
            )
            Index(d.name, *(_expression(metadata, d.table, c) for c in d.columns), unique=d.unique, **where)


def create_index_sql(d: IndexDef, *, concurrently: bool = False) -> str:
    unique = "UNIQUE " if d.unique else ""
    conc = "CONCURRENTLY " if concurrently else ""
    where = f" WHERE {d.where}" if d.where else ""
    return f"CREATE {unique}INDEX {conc}IF NOT EXISTS {d.name} ON {d.table} ({d.sql_columns()}){where}"


def indexes_for(*tables: str, added_in: str | None = None) -> list[IndexDef]:
    """The indexes of ``tables`` a migration creates: those created with the tables, or those
    ``added_in`` a later migration."""
    return [d for d in PERFORMANCE_INDEXES if d.table in tables and d.added_in == added_in]
