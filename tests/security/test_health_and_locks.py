"""The health check notices a SQLite database that answers reads but takes no write (another
connection holds its write lock: a stuck transaction, a backup, an operator's shell): 503 with
the reason while it lasts, instead of 200 while every login waits and then fails. The probe
itself writes nothing and leaves the write queue free.

Face workers whose writes wait in the write queue longer than the busy timeout (another
process's long transaction) run their job again without using one of its attempts."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from filelock import FileLock
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.database import dispose_engine, get_engine
from app.faces.images import load_rgb
from app.faces.models import FaceMatch
from app.jobs.runner import work_once
from app.photos.models import Photo, PhotoStatus
from app.worker import load_job_kinds
from tests.conftest import IS_POSTGRES
from tests.helpers import bearer, drain_jobs, ops_headers, register, upload_photos
from tools.photos import fixture_bytes

pytestmark = pytest.mark.skipif(IS_POSTGRES, reason="SQLite's write lock")


def _database_file() -> str:
    path = get_engine().url.database
    assert path
    return path


@contextmanager
def sqlite_write_lock() -> Iterator[None]:
    """Another connection, outside the service, in a write transaction (``BEGIN IMMEDIATE``)."""
    other = sqlite3.connect(_database_file(), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@contextmanager
def write_queue_held() -> Iterator[None]:
    """Another process of the service in a write transaction that does not end: it holds the
    write queue every writer of ours waits in."""
    lock = FileLock(f"{_database_file()}.write-lock", thread_local=False)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


@pytest.mark.parametrize("held", [sqlite_write_lock, write_queue_held], ids=["sqlite-lock", "write-queue"])
def test_the_health_check_reports_a_database_whose_writes_are_locked(
    client: TestClient, held: Callable[[], AbstractContextManager[None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "health_write_timeout", 0.5)
    assert client.get("/api/health-check").status_code == 200
    with held():
        r = client.get("/api/health-check")
        operator = client.get("/api/health-check", headers=ops_headers()).json()
    assert r.status_code == 503 and r.headers["retry-after"]
    body = r.json()
    assert body["status"] == "degraded" and body["database"]["ok"] is False
    assert body["error"]["code"] == "database_unavailable"
    assert "locked" in body["database"]["reason"] and "detail" not in body["database"]
    assert "0.5s" in operator["database"]["detail"]
    # The lock is gone: healthy again, by itself.
    r = client.get("/api/health-check")
    assert r.status_code == 200 and r.json()["database"]["ok"] is True


def test_the_write_probe_writes_nothing_and_leaves_the_queue_and_timeouts_as_they_were(
    client: TestClient,
) -> None:
    with sqlite3.connect(_database_file()) as db:
        version = db.execute("PRAGMA data_version").fetchone()[0]
        changes = db.total_changes
        for _ in range(5):
            assert client.get("/api/health-check").status_code == 200
        assert db.execute("PRAGMA data_version").fetchone()[0] == version  # nobody committed
        assert db.total_changes == changes
    queue = FileLock(f"{_database_file()}.write-lock", thread_local=False)
    queue.acquire(timeout=0)  # free at once: the probe let go of it
    queue.release()
    with get_engine().connect() as conn:
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == get_settings().sqlite_busy_timeout_ms


# --- jobs whose writes wait past the busy timeout ---------------------------------------------


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Writers give up waiting for the write queue after 0.3 s (``SQLITE_BUSY_TIMEOUT_MS``),
    and a job's lease is short, so a job left leased by a failed worker is taken again soon."""
    settings = get_settings()
    monkeypatch.setattr(settings, "sqlite_busy_timeout_ms", 300)
    monkeypatch.setattr(settings, "job_lease_seconds", 4.0)
    dispose_engine()
    yield
    dispose_engine()


class Workers:
    """Face workers in threads of this process, looping like ``runner.serve`` (an error of the
    loop is logged and the loop goes on)."""

    def __init__(self, n: int) -> None:
        load_job_kinds()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(f"w{i}",), daemon=True) for i in range(n)]

    def _loop(self, worker_id: str) -> None:
        while not self.stop.is_set():
            try:
                did = work_once(worker_id=worker_id)
            except OperationalError:
                did = False
            if not did:
                time.sleep(0.05)

    def __enter__(self) -> Workers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def test_jobs_whose_writes_wait_past_the_busy_timeout_run_again_without_using_attempts(
    client: TestClient,
    org_headers: dict[str, str],
    event: dict[str, Any],
    session: Session,
    short_busy_timeout: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two face workers index and match photos while another process holds the write queue
    longer than the busy timeout, whenever a job is half-way (its image decoded, nothing
    written yet): the job's writes, and then the runner's record of the outcome, time out.
    The job runs again; its attempt is not used."""
    for name, face in (("alice", "obama.jpg"), ("bruno", "biden.jpg")):
        guest = bearer(register(client, event["code"], name))
        files = {"file": ("s.jpg", fixture_bytes(face))}
        assert client.post("/api/upload-selfie", files=files, headers=guest).status_code == 202
    drain_jobs()
    photos = {f"{i}.jpg": fixture_bytes(face) for i, face in enumerate(["obama2.jpg", "biden.jpg"] * 2)}
    ids = set(upload_photos(client, org_headers, event["id"], photos).values())

    halfway = threading.Semaphore(0)
    decode = load_rgb

    def decoded(*args: Any, **kwargs: Any) -> Any:
        image = decode(*args, **kwargs)
        halfway.release()
        return image

    monkeypatch.setattr("app.photos.jobs.load_rgb", decoded)
    holds = 0

    def long_writer() -> None:  # another process: a long transaction each time a job is half-way
        nonlocal holds
        while halfway.acquire(timeout=60) and holds < len(ids):
            with write_queue_held():
                holds += 1
                time.sleep(1.5)

    other = threading.Thread(target=long_writer, daemon=True)
    other.start()
    with Workers(2):
        deadline = time.monotonic() + 240
        while True:
            session.expire_all()
            rows = session.scalars(select(Photo).where(Photo.id.in_(ids))).all()
            if all(p.status in (PhotoStatus.indexed, PhotoStatus.failed) for p in rows):
                break
            assert time.monotonic() < deadline, [(p.id, p.status, p.attempts) for p in rows]
            time.sleep(0.2)
    halfway.release()
    other.join(timeout=30)
    assert holds >= 1
    assert sorted((p.status, p.attempts) for p in rows) == [(PhotoStatus.indexed, 1)] * len(ids)
    matched = session.scalar(select(func.count()).select_from(FaceMatch))
    assert matched  # the matching step (``_insert_matches``) wrote too
