"""What the erasure tests share: what is left of someone, in the tables and in storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect, text

from app.core import storage
from app.core.database import get_engine


def rows_naming(column_value: tuple[str, int]) -> dict[str, int]:
    """Rows of every table naming a user, photo or event (``user_id`` columns and ``users.id``...)."""
    kind, value = column_value
    found: dict[str, int] = {}
    with get_engine().connect() as conn:
        for table in inspect(conn).get_table_names():
            columns = {c["name"] for c in inspect(conn).get_columns(table)}
            wanted = [c for c in columns if c == f"{kind}_id"]
            if table == f"{kind}s":
                wanted.append("id")
            for column in wanted:
                n = conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE {column} = :v"), {"v": value}
                ).scalar()
                if n:
                    found[f"{table}.{column}"] = int(n)
    return found


def media_files() -> set[str]:
    """Every key in storage (local files or the bucket)."""
    return set(storage.backend().keys_older_than(datetime.now(UTC) + timedelta(days=1)))
