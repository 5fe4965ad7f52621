"""What the erasure tests share: a party of two guests, and what is left of someone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from app.core import storage
from app.core.database import get_engine
from tests.fixtures.events import IndexedEvent
from tests.helpers import fixture_bytes, side_by_side


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


class Party(IndexedEvent):
    """A alone in one photo, A next to B in another; guests A and B with their selfies."""

    def __init__(self, client: TestClient) -> None:
        super().__init__(client, "Privacy Party")
        self.upload(
            {"a.jpg": fixture_bytes("obama2.jpg"), "ab.jpg": side_by_side("obama3.jpg", "biden.jpg")},
            index=True,
        )
        self.a = self.guest()
        self.b = self.guest()
        assert self.selfie(self.a, fixture_bytes("obama.jpg"))["status"] == "ready"
        assert self.selfie(self.b, fixture_bytes("biden.jpg"))["status"] == "ready"
        assert self.my_photos(self.a) == {"a.jpg", "ab.jpg"} and self.my_photos(self.b) == {"ab.jpg"}

    def user_id(self, headers: dict[str, str]) -> int:
        return int(self.client.get("/api/me", headers=headers).json()["id"])
