"""A real Gunicorn on a real small disk (a tmpfs of a few MB, mounted as root; skipped
otherwise): when the data disk fills up, new web workers still start and serve (their metrics
files are not on it), uploads are refused with ``storage_full`` and never a 500, the health
check says so, and freeing space (removing a file, deleting an event) brings uploads back
without a restart."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.core.storage import space
from tests.helpers import ops_headers
from tests.security.test_full_disk import refused_for_room
from tools.accounts import PASSWORD, create_organizer_cli
from tools.harness.server import running_server
from tools.photos import distinct_copy, fixture_bytes

pytestmark = [pytest.mark.slow, pytest.mark.once]  # a real server


def _photo_status(data_dir: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(data_dir / "app.db") as db:
        return [
            (str(s), int(n)) for s, n in db.execute("SELECT status, count(*) FROM photos GROUP BY status")
        ]


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A tmpfs of 48 MB mounted for this test (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mount = Path(tempfile.mkdtemp(prefix="small-disk-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)


def _fill(path: Path) -> None:
    """Write zeros into ``path`` until its disk is full. Unbuffered: a buffered file would raise
    ENOSPC a second time when it is closed, flushing what the full disk refused."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    finally:
        os.close(fd)


def _worker_pids(base: str, ops: dict[str, str]) -> set[int]:
    workers = httpx.get(f"{base}/api/stats", headers=ops, timeout=30).json()["requests"]["workers"]
    return {w["pid"] for w in workers if w["alive"]}


def test_on_a_real_full_disk_workers_keep_serving_uploads_are_refused_and_freed_space_brings_them_back(
    small_disk: Path,
) -> None:
    env = {
        "DATA_DIR": str(small_disk),
        "DATABASE_URL": "",  # SQLite on the small disk too
        "EMBEDDED_FACE_WORKERS": "true",
        "FACE_WORKERS": "1",
        # Room for SQLite's write-ahead log, which grows to a few MB before it is reused.
        "STORAGE_MIN_FREE_BYTES": str(12 * 1024 * 1024),
        "JOB_IDLE_POLL_SECONDS": "0.2",
    }
    with running_server(workers=2, env=env) as (base, environ):
        create_organizer_cli(environ)
        ops = ops_headers(small_disk)
        c = httpx.Client(base_url=base, timeout=60)
        token = c.post("/api/login", json={"login": "boss", "password": PASSWORD}).json()["access_token"]
        org = {"Authorization": f"Bearer {token}"}
        first = c.post("/api/events", json={"name": "Full"}, headers=org).json()["id"]
        sent = itertools.count()

        def upload(event_id: int) -> httpx.Response:
            # A new photo each time: the same bytes again would be answered as a duplicate.
            photo = {"files": ("a.jpg", distinct_copy(fixture_bytes("obama3.jpg"), next(sent)))}
            r = c.post(f"/api/events/{event_id}/photos", files=photo, headers=org)
            assert r.status_code in (202, 507), r.text  # never a 500
            return r

        assert upload(first).json()["accepted"]

        # Something else fills the disk to the last byte: a new web worker still starts and
        # serves (its metrics files are not on this disk), uploads are refused.
        filler = small_disk / "filler"
        _fill(filler)
        time.sleep(space.CACHE_SECONDS)
        health = c.get("/api/health-check", headers=ops)
        assert health.status_code == 200, health.text  # degraded, but serving: not taken out
        assert health.json()["storage"]["ok"] is False and health.json()["database"]["ok"] is True
        assert refused_for_room(upload(first))
        before = _worker_pids(base, ops)
        os.kill(sorted(before)[0], signal.SIGKILL)
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, "no new worker served"
            try:
                now = _worker_pids(base, ops)
            except httpx.HTTPError:
                now = set()
            if len(now) == 2 and now - before:
                break
            time.sleep(0.5)
        time.sleep(3)  # a worker dying at its first request would be gone by now
        assert _worker_pids(base, ops) == now, "web workers keep dying on the full disk"
        for _ in range(20):  # fresh connections: both workers answer
            with httpx.Client(base_url=base, timeout=30, headers={"Connection": "close"}) as fresh:
                assert fresh.get("/api/health-check").status_code == 200

        # The filler goes: uploads are taken again, without a restart.
        filler.unlink()
        deadline = time.monotonic() + 60
        while refused_for_room(r := upload(first)):
            assert time.monotonic() < deadline, "uploads were never taken again"
            time.sleep(0.5)
        assert r.json()["accepted"], r.text

        # Photos fill it down to its floor; deleting the event (database writes, at the floor)
        # frees the disk, and uploads are taken again.
        for _ in range(400):
            if refused_for_room(upload(first)):
                break
        else:
            pytest.fail("uploads were never refused")
        assert c.delete(f"/api/events/{first}", headers=org).status_code == 204
        second = c.post("/api/events", json={"name": "Next"}, headers=org).json()["id"]
        deadline = time.monotonic() + 180
        while refused_for_room(r := upload(second)):
            assert time.monotonic() < deadline, f"the purge freed nothing: {_photo_status(small_disk)}"
            time.sleep(1)
        assert r.json()["accepted"], r.text
        assert c.get("/api/health-check").json()["storage"]["ok"] is True
