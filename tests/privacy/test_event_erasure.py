"""Deleting an event, and purging its photos when its retention is over: gone for guests at
once, erased by a durable job that a kill -9 half-way does not stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import storage
from app.core.database import session_scope, utcnow
from app.events.models import Event
from app.photos.models import EventPurge, Photo, PhotoStatus
from tests.fixtures.events import Party
from tests.helpers import drain_jobs
from tests.privacy.erasure import media_files, rows_naming
from tools.photos import fixture_bytes

ROOT = Path(__file__).resolve().parents[2]


def test_a_deleted_event_is_gone_for_guests_at_once_then_erased_entirely(party: Party) -> None:
    c, event_id = party.client, party.event["id"]
    other = c.post("/api/events", json={"name": "Other"}, headers=party.org).json()
    assert c.delete(f"/api/events/{event_id}", headers=party.org).status_code == 204
    # At once: no guest sees it or its photos; the code and the organizer's views forget it.
    assert party.my_photos(party.a) == set() and party.my_photos(party.b) == set()
    assert c.get("/api/me", headers=party.a).json()["events"] == []
    assert c.get(f"/api/photos/{party.photos['a.jpg']}/thumbnail", headers=party.a).status_code == 404
    assert c.post("/api/check-event-code", json={"code": party.event["code"]}).status_code == 404
    assert c.get(f"/api/events/{event_id}", headers=party.org).status_code == 404
    assert [e["id"] for e in c.get("/api/events", headers=party.org).json()["events"]] == [other["id"]]
    drain_jobs()
    assert rows_naming(("event", event_id)) == {}
    for photo_id in party.photos.values():
        assert rows_naming(("photo", photo_id)) == {}
    assert not {f for f in media_files() if f.split("/")[1:2] == [str(event_id)]}
    assert c.get(f"/api/events/{other['id']}", headers=party.org).status_code == 200
    # The guests keep their accounts and selfies: they are not the event's.
    assert c.get("/api/selfie", headers=party.a).json()["status"] == "ready"


def test_photos_are_purged_when_the_events_retention_is_over(
    client: TestClient, org_headers: dict[str, str]
) -> None:
    from app.__main__ import main

    ended = (utcnow() - timedelta(days=40)).isoformat()
    recent = (utcnow() - timedelta(days=2)).isoformat()
    old = client.post(
        "/api/events", json={"name": "Old", "ends_at": ended, "retention_days": 30}, headers=org_headers
    ).json()
    young = client.post("/api/events", json={"name": "Young", "ends_at": recent}, headers=org_headers).json()
    assert young["retention_days"] == 30
    changed = client.patch(f"/api/events/{young['id']}", json={"retention_days": 365}, headers=org_headers)
    assert changed.status_code == 200 and changed.json()["retention_days"] == 365
    assert (
        client.patch(
            f"/api/events/{young['id']}", json={"retention_days": 0}, headers=org_headers
        ).status_code
        == 422
    )
    from tests.helpers import upload_photos

    upload_photos(client, org_headers, old["id"], {"a.jpg": fixture_bytes("obama2.jpg")})
    kept = upload_photos(client, org_headers, young["id"], {"a.jpg": fixture_bytes("obama2.jpg")})
    drain_jobs()
    assert main(["purge"]) == 0
    # The event stays, empty, with the record of its purge.
    assert rows_naming(("event", old["id"])) == {"events.id": 1, "event_purges.event_id": 1}
    assert client.get(f"/api/events/{old['id']}", headers=org_headers).json()["photos"]["indexed"] == 0
    assert not {f for f in media_files() if f.split("/")[1:2] == [str(old["id"])]}
    assert rows_naming(("photo", kept["a.jpg"])) != {}
    with session_scope() as session:
        assert session.get(Event, old["id"]).purged_at is not None  # type: ignore[union-attr]


def _photos_without_faces(event_id: int, uploader: int, n: int) -> None:
    """n indexed photos with their three files, made directly (no face work to wait for)."""
    with session_scope() as session:
        for i in range(n):
            keys = [f"photos/{event_id}/{i}.jpg", f"thumbs/{event_id}/{i}.jpg", f"served/{event_id}/{i}.jpg"]
            for key in keys:
                storage.save(key, b"jpeg bytes")
            session.add(
                Photo(
                    event_id=event_id,
                    uploaded_by=uploader,
                    filename=f"{i}.jpg",
                    original_key=keys[0],
                    thumbnail_key=keys[1],
                    served_key=keys[2],
                    original_format="JPEG",
                    size_bytes=10,
                    width=1,
                    height=1,
                    status=PhotoStatus.indexed,
                )
            )


@pytest.mark.slow
def test_an_event_erasure_killed_half_way_is_finished_by_the_next_worker(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any], session: Session
) -> None:
    me = client.get("/api/me", headers=org_headers).json()["id"]
    _photos_without_faces(event["id"], me, 40)
    assert client.delete(f"/api/events/{event['id']}", headers=org_headers).status_code == 204

    purge_id = session.scalars(select(EventPurge.id).where(EventPurge.event_id == event["id"])).one()

    def purge() -> EventPurge:
        session.expire_all()
        job = session.get(EventPurge, purge_id)
        assert job is not None
        return job

    env = {
        **os.environ,
        "PURGE_BATCH_SIZE": "2",
        "WORKER_CHAOS_STEP_SECONDS": "0.3",
        "JOB_LEASE_SECONDS": "3",
    }
    doomed = subprocess.Popen(
        [sys.executable, "-m", "app.worker", "--processes", "1"], cwd=ROOT, env=env, start_new_session=True
    )
    try:
        import time

        deadline = time.monotonic() + 90
        while purge().photos_deleted < 6:
            assert time.monotonic() < deadline, "the worker did not start the erasure"
            time.sleep(0.05)
        os.killpg(doomed.pid, signal.SIGKILL)
    finally:
        doomed.wait(timeout=30)
    half = purge()
    assert half.status == "running" and 0 < half.photos_deleted < 40
    time.sleep(3.5)  # the dead worker's lease expires
    drain_jobs()
    assert purge().status == "done" and purge().photos_deleted >= 40 - half.photos_deleted
    assert rows_naming(("event", event["id"])) == {}
    assert not {f for f in media_files() if f.split("/")[1:2] == [str(event["id"])]}


def test_the_daily_sweep_queues_due_purges_and_comes_back_the_next_day(
    client: TestClient, org_headers: dict[str, str]
) -> None:
    from app.photos.models import PurgeReason
    from tests.helpers import upload_photos

    ended = (utcnow() - timedelta(days=40)).isoformat()
    old = client.post("/api/events", json={"name": "Old", "ends_at": ended}, headers=org_headers).json()
    upload_photos(client, org_headers, old["id"], {"a.jpg": fixture_bytes("obama2.jpg")})
    with session_scope() as session:
        session.add(EventPurge(reason=PurgeReason.sweep, status="pending"))
    drain_jobs()
    with session_scope() as session:
        sweep = session.scalars(select(EventPurge).where(EventPurge.reason == PurgeReason.sweep)).one()
        assert sweep.status == "pending" and sweep.available_at is not None
        assert sweep.available_at.replace(tzinfo=None) > (utcnow() + timedelta(hours=23)).replace(tzinfo=None)
        retention = session.scalars(
            select(EventPurge).where(EventPurge.reason == PurgeReason.retention)
        ).one()
        assert retention.status == "done" and retention.photos_deleted == 1
