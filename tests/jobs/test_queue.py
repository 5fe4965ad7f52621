"""Job claiming: never twice at once, taken again after a lease expires, bounded retries."""

from __future__ import annotations

import threading
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.database import get_sessionmaker, utcnow
from app.jobs import queue
from app.photos.models import Photo, PhotoStatus
from tests.helpers import drain_jobs, login, make_event, make_organizer, upload_photos
from tools.photos import distinct_copy, fixture_bytes

TODO = (PhotoStatus.pending, PhotoStatus.processing)


def _photos(client: TestClient, session: Session, n: int) -> list[int]:
    org = login(client, make_organizer(session)["username"])
    event = make_event(client, org)
    data = fixture_bytes("Tom_Hanks_54745.png")
    photos = {f"p{i}.png": distinct_copy(data, i) for i in range(n)}
    return list(upload_photos(client, org, event["id"], photos).values())


def test_concurrent_workers_never_claim_the_same_job(client: TestClient, session: Session) -> None:
    ids = _photos(client, session, 24)
    claimed: list[tuple[str, int]] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        with get_sessionmaker()() as s:
            while (
                job := queue.claim(
                    s, Photo, todo=TODO, worker_id=name, lease_seconds=60, set_status=PhotoStatus.processing
                )
            ) is not None:
                with lock:
                    claimed.append((name, job))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    jobs = [job for _, job in claimed]
    assert sorted(jobs) == sorted(ids)  # every job exactly once
    assert len({name for name, _ in claimed}) > 1


def test_a_job_whose_worker_died_is_taken_again_after_the_lease_expires(
    client: TestClient, session: Session
) -> None:
    [photo_id] = _photos(client, session, 1)
    assert queue.claim(session, Photo, todo=TODO, worker_id="dead", lease_seconds=60) == photo_id
    assert queue.claim(session, Photo, todo=TODO, worker_id="alive", lease_seconds=60) is None
    session.execute(update(Photo).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert queue.claim(session, Photo, todo=TODO, worker_id="alive", lease_seconds=60) == photo_id
    # The dead worker wakes up: its writes are fenced off.
    assert not queue.fenced_update(session, Photo, photo_id, "dead", status=PhotoStatus.failed)
    session.rollback()


def test_a_job_that_keeps_killing_its_workers_fails_with_a_reason(
    client: TestClient, session: Session
) -> None:
    [photo_id] = _photos(client, session, 1)
    for attempt in range(get_settings().job_max_attempts):
        assert (
            queue.claim(session, Photo, todo=TODO, worker_id=f"crash{attempt}", lease_seconds=60) == photo_id
        )
        session.execute(update(Photo).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    drain_jobs()
    photo = session.get_one(Photo, photo_id)
    session.refresh(photo)
    assert photo.status == PhotoStatus.failed
    assert "Gave up after" in (photo.error_message or "")
    listed = client.get(
        f"/api/events/{photo.event_id}/photos",
        params={"status": "failed"},
        headers=login(client, _organizer_name(session, photo.event_id)),
    )
    assert listed.json()["photos"][0]["error"]["code"] == "gave_up"


def _organizer_name(session: Session, event_id: int) -> str:
    from app.accounts.models import User
    from app.events.models import Event

    event = session.get_one(Event, event_id)
    return session.get_one(User, event.organizer_id).username
