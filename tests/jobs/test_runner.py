"""The job runner: heartbeat, retries, postponing, outcomes, priorities and wake-ups."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.database import session_scope, utcnow
from app.jobs import queue, runner
from app.jobs.kinds import JobKind, Outcome, Postpone, registered
from app.jobs.wakeup import WakeListener, notify_on_commit
from app.photos.models import Photo, PhotoStatus
from app.selfies.models import Selfie
from app.worker import load_job_kinds
from tests.helpers import bearer, login, make_event, make_organizer, register, upload_photos
from tools.photos import fixture_bytes

TODO = (PhotoStatus.pending, PhotoStatus.processing)


def _photo(client: TestClient, session: Session) -> int:
    org = login(client, make_organizer(session)["username"])
    event = make_event(client, org)
    return upload_photos(client, org, event["id"], {"p.png": fixture_bytes("Tom_Hanks_54745.png")})["p.png"]


def _kind(handle: Any) -> JobKind:
    return JobKind(
        name="test-photo",
        model=Photo,
        todo=TODO,
        failed_status=PhotoStatus.failed,
        handle=handle,
        retry_status=PhotoStatus.pending,
        claim_status=PhotoStatus.processing,
    )


def _reload(session: Session, photo_id: int) -> Photo:
    session.expire_all()
    photo = session.get(Photo, photo_id)
    assert photo is not None
    return photo


def test_the_heartbeat_keeps_a_job_that_outlives_its_lease_from_being_claimed_again(
    client: TestClient, session: Session
) -> None:
    photo_id = _photo(client, session)
    settings = get_settings().model_copy(update={"job_lease_seconds": 0.9})
    stolen: list[int] = []
    started, done = threading.Event(), threading.Event()

    def slow(_session: Session, photo: Photo) -> Outcome:
        started.set()
        time.sleep(3)  # three leases long (an Azure training wait can be)
        return Outcome({"status": PhotoStatus.indexed})

    def thief() -> None:
        started.wait(30)
        with session_scope() as s:
            while not done.is_set():
                if queue.claim(s, Photo, todo=TODO, worker_id="thief", lease_seconds=60) is not None:
                    stolen.append(1)
                time.sleep(0.1)

    other = threading.Thread(target=thief)
    other.start()
    try:
        assert runner.run_one(_kind(slow), worker_id="owner", settings=settings)
    finally:
        done.set()
        other.join()
    assert stolen == []
    photo = _reload(session, photo_id)
    assert (photo.status, photo.attempts, photo.lease_owner) == (PhotoStatus.indexed, 1, None)


def test_a_failing_handler_is_retried_with_backoff_then_fails_with_the_reason(
    client: TestClient, session: Session
) -> None:
    photo_id = _photo(client, session)

    def broken(_session: Session, _photo: Photo) -> Outcome:
        raise RuntimeError("disk on fire")

    kind = _kind(broken)
    for attempt in range(1, get_settings().job_max_attempts + 1):
        assert runner.run_one(kind, worker_id="w")
        photo = _reload(session, photo_id)
        assert photo.attempts == attempt and photo.error_message == "RuntimeError: disk on fire"
        if attempt < get_settings().job_max_attempts:
            assert photo.status == PhotoStatus.pending
            assert photo.available_at is not None and photo.available_at > utcnow()
            assert not runner.run_one(kind, worker_id="w")  # backing off: nothing to claim yet
            session.execute(update(Photo).values(available_at=None))
            session.commit()
    assert (photo.status, photo.error_code) == (PhotoStatus.failed, "processing_error")


def test_a_postponed_job_keeps_its_attempts_and_says_why(client: TestClient, session: Session) -> None:
    photo_id = _photo(client, session)

    def unavailable(_session: Session, _photo: Photo) -> Outcome:
        raise Postpone("the provider is down", code="provider_unavailable", retry_after=30)

    for _ in range(5):
        assert runner.run_one(_kind(unavailable), worker_id="w")
        session.execute(update(Photo).values(available_at=None))
        session.commit()
    photo = _reload(session, photo_id)
    assert (photo.status, photo.attempts, photo.error_code) == (
        PhotoStatus.pending,
        0,
        "provider_unavailable",
    )


def test_a_step_is_committed_before_the_next_and_writes_nothing_if_the_lease_was_lost(
    client: TestClient, session: Session
) -> None:
    photo_id = _photo(client, session)
    seen: list[int] = []

    def two_steps(_session: Session, photo: Photo) -> Outcome:
        seen.append(photo.faces_count)
        if photo.faces_count == 0:
            return Outcome({"faces_count": 7}, done=False)
        # Someone else took the job meanwhile: this outcome must not land.
        with session_scope() as other:
            other.execute(update(Photo).values(lease_owner="someone-else"))
        return Outcome({"status": PhotoStatus.indexed})

    assert runner.run_one(_kind(two_steps), worker_id="w")
    photo = _reload(session, photo_id)
    assert seen == [0, 7]
    assert (photo.faces_count, photo.status, photo.lease_owner) == (7, PhotoStatus.processing, "someone-else")


def test_selfies_are_served_before_photos(client: TestClient, session: Session) -> None:
    load_job_kinds()
    assert [k.name for k in registered()] == [
        "mail",
        "selfie",
        "verify-mail",
        "provider-erasure",
        "photo",
        "face-reembed",
        "event-purge",
        "notices",
        "notification-mail",
    ]
    org = login(client, make_organizer(session)["username"])
    event = make_event(client, org)
    upload_photos(client, org, event["id"], {"p.png": fixture_bytes("Tom_Hanks_54745.png")})
    guest = bearer(register(client, event["code"], "first"))
    client.post("/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=guest)
    assert runner.work_once(worker_id="w")
    selfie = session.query(Selfie).one()
    assert selfie.status != "pending"
    assert session.query(Photo).one().status == PhotoStatus.pending


@pytest.fixture
def listener() -> Any:
    woken = WakeListener(get_settings(), f"test-{time.monotonic_ns()}")
    woken.wait(0.01)  # drain anything announced before
    yield woken
    woken.close()


def test_an_idle_worker_is_woken_by_a_committed_job_and_not_by_a_rolled_back_one(
    client: TestClient, session: Session, listener: WakeListener
) -> None:
    photo_id = _photo(client, session)
    listener.wait(0.2)  # the upload above announced its photo
    with session_scope() as s:
        s.execute(update(Photo).where(Photo.id == photo_id).values(status=PhotoStatus.pending))
        notify_on_commit(s)
        s.rollback()
    assert listener.wait(0.5) is False
    started = time.monotonic()
    with session_scope() as s:
        s.execute(update(Photo).where(Photo.id == photo_id).values(status=PhotoStatus.pending))
        notify_on_commit(s)
    assert listener.wait(10) is True
    assert time.monotonic() - started < 5


def test_an_expired_lease_is_reclaimed_by_the_next_worker_that_looks(
    client: TestClient, session: Session
) -> None:
    photo_id = _photo(client, session)
    assert queue.claim(session, Photo, todo=TODO, worker_id="dead", lease_seconds=60) == photo_id
    session.execute(update(Photo).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert runner.run_one(_kind(lambda _s, _p: Outcome({"status": PhotoStatus.indexed})), worker_id="alive")
    assert _reload(session, photo_id).status == PhotoStatus.indexed


def test_a_job_that_loses_a_write_race_on_sqlite_runs_again_without_using_an_attempt(
    client: TestClient, session: Session
) -> None:
    """On SQLite a transaction reads, another connection commits a write, and the first one's
    write is refused at once (its snapshot is stale). Our own processes queue their writing
    transactions (savepoints included), so here the other writer bypasses the queue; whatever
    the cause, a lost write race is no failure of the job."""
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("a stale WAL snapshot is SQLite's")
    photo_id = _photo(client, session)
    calls: list[int] = []

    def racing(job_session: Session, photo: Photo) -> Outcome:
        calls.append(photo.attempts)
        # A savepoint (as the photo job's matching step takes) begins the transaction, so its
        # first read fixes the snapshot the later write needs to be current.
        with job_session.begin_nested():
            job_session.scalar(select(Photo.faces_count).where(Photo.id == photo_id))
            if len(calls) == 1:  # another writer commits meanwhile
                bind = job_session.get_bind()
                assert isinstance(bind, Engine)
                with sqlite3.connect(str(bind.url.database)) as other:
                    other.execute("UPDATE photos SET error_message = 'other' WHERE id = ?", (photo_id,))
            job_session.execute(update(Photo).where(Photo.id == photo_id).values(faces_count=7))
        return Outcome({"status": PhotoStatus.indexed})

    kind = _kind(racing)
    assert runner.run_one(kind, worker_id="w")
    photo = _reload(session, photo_id)
    assert (photo.status, photo.attempts, photo.error_code) == (PhotoStatus.pending, 0, None)
    time.sleep(runner.WRITE_CONFLICT_RETRY_SECONDS + 0.05)
    assert runner.run_one(kind, worker_id="w")
    photo = _reload(session, photo_id)
    assert (photo.status, photo.attempts, photo.faces_count) == (PhotoStatus.indexed, 1, 7)
    assert calls == [1, 1]


def test_the_pool_runs_its_nodes_housekeeping_at_start_and_survives_its_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``supervise(maintenance=...)``: the face-worker pool sweeps the node (its gallery
    segments) when it starts and then every ``every`` seconds; a failing sweep is logged and
    the pool goes on."""
    calls: list[float] = []

    def sweep() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("the database is not up yet")
        runner._request_stop(signal.SIGTERM, None)

    monkeypatch.setattr(runner, "_stopping", False)
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        assert runner.supervise(lambda _i, _n: None, 0, nice=0, maintenance=sweep, every=0.2) == 0
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
        monkeypatch.setattr(runner, "_stopping", False)
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.2
