"""Every event has an erasure date (``purge_at``): its end, or its last upload when it has
none, plus its retention. The organizer's views and the guest's ``/api/me`` show it, and the
retention purge erases events without an end too."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.core.database import session_scope, utcnow
from app.events.models import Event
from app.photos import service as photos_service
from app.photos.models import EventPurge, Photo
from tests.helpers import bearer, drain_jobs, register, upload_photos
from tools.photos import fixture_bytes


def _when(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _views(client: TestClient, org: dict[str, str], guest: dict[str, str], event_id: int) -> list[Any]:
    """``purge_at`` of the event in the organizer's event, the organizer's list, the guest's /api/me."""
    listed = client.get("/api/events", headers=org).json()["events"]
    mine = client.get("/api/me", headers=guest).json()["events"]
    return [
        client.get(f"/api/events/{event_id}", headers=org).json()["purge_at"],
        next(e["purge_at"] for e in listed if e["id"] == event_id),
        next(e["purge_at"] for e in mine if e["id"] == event_id),
    ]


def test_an_event_with_an_end_is_erased_its_retention_after_that_end(
    client: TestClient, org_headers: dict[str, str]
) -> None:
    ends = utcnow() - timedelta(days=2)
    body = {"name": "Ended", "ends_at": ends.isoformat(), "retention_days": 10}
    event = client.post("/api/events", json=body, headers=org_headers).json()
    assert _when(event["purge_at"]) == ends + timedelta(days=10)
    guest = bearer(register(client, event["code"], "endguest"))
    dates = _views(client, org_headers, guest, event["id"])
    assert {_when(d) for d in dates} == {ends + timedelta(days=10)}
    assert client.get("/api/me", headers=guest).json()["events"][0]["retention_days"] == 10


def test_an_event_without_an_end_counts_from_its_last_upload_and_has_no_date_before_any_photo(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any]
) -> None:
    assert event["ends_at"] is None and event["purge_at"] is None
    guest = bearer(register(client, event["code"], "openguest"))
    assert _views(client, org_headers, guest, event["id"]) == [None, None, None]

    before = utcnow()
    upload_photos(client, org_headers, event["id"], {"a.jpg": fixture_bytes("obama2.jpg")})
    dates = [_when(d) for d in _views(client, org_headers, guest, event["id"])]
    assert len(set(dates)) == 1
    expected = before + timedelta(days=event["retention_days"])
    assert expected - timedelta(seconds=1) <= dates[0] <= expected + timedelta(minutes=1)

    # A later upload moves the date: it is counted from the last one.
    with session_scope() as session:
        session.execute(update(Photo).values(created_at=before - timedelta(days=5)))
    moved = _when(client.get(f"/api/events/{event['id']}", headers=org_headers).json()["purge_at"])
    assert abs(moved - (expected - timedelta(days=5))) < timedelta(minutes=1)
    upload_photos(client, org_headers, event["id"], {"b.jpg": fixture_bytes("obama3.jpg")})
    again = _when(client.get(f"/api/events/{event['id']}", headers=org_headers).json()["purge_at"])
    assert abs(again - expected) < timedelta(minutes=1)


def test_the_purge_erases_an_event_without_an_end_once_its_last_upload_is_older_than_its_retention(
    client: TestClient, org_headers: dict[str, str]
) -> None:
    def create(name: str, days: int) -> dict[str, Any]:
        body = {"name": name, "retention_days": days}
        made: dict[str, Any] = client.post("/api/events", json=body, headers=org_headers).json()
        return made

    old, young, empty = create("Old", 3), create("Young", 3), create("Empty", 1)
    gone = upload_photos(client, org_headers, old["id"], {"a.jpg": fixture_bytes("obama2.jpg")})
    kept = upload_photos(client, org_headers, young["id"], {"a.jpg": fixture_bytes("obama2.jpg")})
    with session_scope() as session:
        session.execute(
            update(Photo).where(Photo.event_id == old["id"]).values(created_at=utcnow() - timedelta(days=4))
        )
        session.execute(
            update(Photo).where(Photo.event_id == young["id"]).values(created_at=utcnow() - timedelta(days=2))
        )
        # Whatever the age of the event itself: only its photos count.
        session.execute(update(Event).values(created_at=utcnow() - timedelta(days=400)))
    with session_scope() as session:
        queued = photos_service.queue_retention_purges(session=session)
        assert [p.event_id for p in queued] == [old["id"]]
    with session_scope() as session:  # queued once, not twice
        assert photos_service.queue_retention_purges(session=session) == []
    drain_jobs()
    with session_scope() as session:
        assert session.get(Photo, gone["a.jpg"]) is None
        assert session.get(Photo, kept["a.jpg"]) is not None
        purged = session.get(Event, old["id"])
        assert purged is not None and purged.purged_at is not None
        never = select(EventPurge.id).where(EventPurge.event_id == empty["id"])
        assert session.scalars(never).all() == []
    # Emptied, the event keeps the date its photos were erased.
    assert client.get(f"/api/events/{old['id']}", headers=org_headers).json()["purge_at"] is not None
