"""Really kill -9 a face worker in the middle of a job: the job still finishes, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.faces.models import Face
from app.photos.models import Photo, PhotoStatus
from tests.helpers import fixture_bytes, login, make_event, make_organizer, upload_photos

ROOT = Path(__file__).resolve().parents[2]


def start_worker(**env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.worker", "--processes", "1"],
        cwd=ROOT,
        env={**os.environ, "JOB_POLL_INTERVAL": "0.05", **env},
        start_new_session=True,  # its own process group: kill the pool and its child together
    )


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_killed_worker_job_is_finished_exactly_once_after_its_lease_expires(
    client: TestClient, session: Session
) -> None:
    org = login(client, make_organizer(session)["username"])
    event = make_event(client, org)
    photo_id = upload_photos(client, org, event["id"], {"a.jpg": fixture_bytes("obama2.jpg")})["a.jpg"]

    def photo() -> Photo:
        session.expire_all()
        p = session.get(Photo, photo_id)
        assert p is not None
        return p

    doomed = start_worker(WORKER_CHAOS_PAUSE_SECONDS="120", JOB_LEASE_SECONDS="4")
    try:
        wait_for(lambda: photo().lease_owner is not None, 90, "the first worker to claim the job")
        first_owner = photo().lease_owner
        os.killpg(doomed.pid, signal.SIGKILL)
    finally:
        doomed.wait(timeout=30)
    assert photo().status == PhotoStatus.processing and photo().attempts == 1

    survivor = start_worker(JOB_LEASE_SECONDS="4")
    try:
        wait_for(lambda: photo().status == PhotoStatus.indexed, 90, "the job to be finished")
    finally:
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=60) == 0

    done = photo()
    assert done.attempts == 2
    assert done.lease_owner is None and done.error_code is None
    assert done.faces_count == 1
    assert session.scalar(select(func.count()).select_from(Face).where(Face.photo_id == photo_id)) == 1
    assert first_owner is not None
