"""A full data disk: uploads are refused with 507 ``storage_full`` before the disk is full (a
free-space floor, read cheaply), the database keeps room for the deletions that free space,
photos waiting for room are postponed rather than failed, the service takes uploads again by
itself once space is back, and the node's runtime files (metrics, sockets) are not on the
data disk, so a full disk never kills a new web worker.

The floor and the disk's reading are made testable: a fake disk (``space.read_disk`` replaced)
in this process, and a floor just above the real free space; as root, a real tmpfs filled up
under a real Gunicorn (``test_full_disk_server.py``).
"""

from __future__ import annotations

import errno
import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core import storage
from app.core.config import Settings, get_settings
from app.core.database import utcnow
from app.core.storage import space
from app.core.storage.local import LocalBackend
from app.photos.models import Photo, PhotoStatus
from tests.helpers import drain_jobs, ops_headers, upload_photos
from tools.photos import distinct_copy, fixture_bytes

_sent = itertools.count()

GIB = 1024**3


@dataclass
class FakeDisk:
    """What the file system says about the media disk (``space.read_disk``), as the test decides."""

    free: int
    total: int = 100 * GIB
    reads: int = 0

    def set_free(self, free: int) -> None:
        """The disk now has ``free`` bytes free, seen at the next check."""
        self.free = free
        space.forget()

    def read(self, _path: Path) -> tuple[int, int]:
        self.reads += 1
        return self.free, self.total


@pytest.fixture
def media(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Local storage in an empty DATA_DIR of this test (tokens already given stay valid); the
    disk read afresh."""
    settings = get_settings()
    monkeypatch.setattr(settings, "secret_key", settings.signing_key())
    monkeypatch.setattr(settings, "data_dir", tmp_path)
    space.forget()
    yield tmp_path / "media"
    space.forget()


@pytest.fixture
def disk(media: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDisk:
    """A fake 100 GiB media disk with 10 GiB free, under a floor of 1 GiB."""
    fake = FakeDisk(free=10 * GIB)
    monkeypatch.setattr(space, "read_disk", fake.read)
    monkeypatch.setattr(get_settings(), "storage_min_free_bytes", GIB)
    return fake


def _stored_files(media: Path) -> list[Path]:
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


def refused_for_room(r: Any) -> bool:
    """A whole upload refused with 507 storage_full, or (the bulk photo route answering per
    file) every file of it rejected with storage_full."""
    if r.status_code == 507:
        return bool(r.json()["error"]["code"] == "storage_full" and int(r.headers["retry-after"]) > 0)
    body = r.json()
    return (
        r.status_code == 202
        and not body["accepted"]
        and {f["error"]["code"] for f in body["rejected"]} == {"storage_full"}
    )


def _upload_photo(client: TestClient, headers: dict[str, str], event_id: int, name: str = "a.jpg") -> Any:
    """A new photo each time (the same bytes again would be answered as a duplicate)."""
    return client.post(
        f"/api/events/{event_id}/photos",
        files=[("files", (name, distinct_copy(fixture_bytes("obama.jpg"), next(_sent))))],
        headers=headers,
    )


def test_a_photo_upload_under_the_free_space_floor_is_refused_and_nothing_is_stored(
    client: TestClient,
    org_headers: dict[str, str],
    event: dict[str, Any],
    disk: FakeDisk,
    media: Path,
    session: Session,
) -> None:
    disk.set_free(GIB - 1)
    r = _upload_photo(client, org_headers, event["id"])
    assert refused_for_room(r), r.text
    assert _stored_files(media) == []
    assert session.scalars(select(Photo)).all() == []


def test_a_selfie_upload_under_the_floor_is_refused_507_storage_full(
    client: TestClient, guest_headers: dict[str, str], disk: FakeDisk, media: Path
) -> None:
    disk.set_free(GIB - 1)
    r = client.post(
        "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=guest_headers
    )
    assert (r.status_code, r.json()["error"]["code"]) == (507, "storage_full"), r.text
    assert int(r.headers["retry-after"]) > 0
    assert _stored_files(media) == []
    assert client.get("/api/selfie", headers=guest_headers).status_code == 404


def test_an_upload_that_would_cross_the_floor_is_refused_before_it_is_written(
    client: TestClient, guest_headers: dict[str, str], disk: FakeDisk, media: Path
) -> None:
    data = fixture_bytes("obama.jpg")
    disk.set_free(GIB + len(data) // 2)  # above the floor now, under it once this file is written
    r = client.post("/api/upload-selfie", files={"file": ("s.jpg", data)}, headers=guest_headers)
    assert (r.status_code, r.json()["error"]["code"]) == (507, "storage_full"), r.text
    assert _stored_files(media) == []


def test_a_disk_that_fills_up_while_writing_is_storage_full_not_a_500(
    client: TestClient,
    guest_headers: dict[str, str],
    org_headers: dict[str, str],
    event: dict[str, Any],
    media: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Something else filled the disk after the check: the write fails with ENOSPC."""

    def no_space(self: Any, key: str, data: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalBackend, "save", no_space)
    r = client.post(
        "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=guest_headers
    )
    assert (r.status_code, r.json()["error"]["code"]) == (507, "storage_full"), r.text
    assert refused_for_room(_upload_photo(client, org_headers, event["id"]))


def test_uploads_are_taken_again_by_themselves_once_space_is_freed(
    client: TestClient, guest_headers: dict[str, str], disk: FakeDisk, media: Path
) -> None:
    disk.set_free(GIB - 1)
    selfie = {"file": ("s.jpg", fixture_bytes("obama.jpg"))}
    assert client.post("/api/upload-selfie", files=selfie, headers=guest_headers).status_code == 507
    disk.free = 5 * GIB  # an organizer deleted photos: nobody restarts anything
    deadline = time.monotonic() + 30
    while (r := client.post("/api/upload-selfie", files=selfie, headers=guest_headers)).status_code == 507:
        assert time.monotonic() < deadline, "uploads were never taken again"
        time.sleep(0.2)
    assert r.status_code == 202, r.text
    assert len(_stored_files(media)) == 1


def test_the_disk_is_read_at_most_once_a_second_however_many_uploads_check_it(disk: FakeDisk) -> None:
    space.forget()
    before = disk.reads
    for _ in range(200):
        storage.ensure_room(1024)
    assert disk.reads - before <= 2  # once, or twice if a second passed on a busy machine
    # Each write is taken off the cached figure at once: the burst cannot overshoot the floor.
    assert space.reading().free_bytes <= 10 * GIB - 200 * 1024


def test_deleting_an_event_frees_its_files_while_uploads_are_refused(
    client: TestClient,
    org_headers: dict[str, str],
    event: dict[str, Any],
    disk: FakeDisk,
    media: Path,
    session: Session,
) -> None:
    upload_photos(client, org_headers, event["id"], {"a.jpg": fixture_bytes("obama.jpg")})
    drain_jobs()
    assert _stored_files(media)  # the original, its served copy and its thumbnail
    disk.set_free(GIB // 2)  # the disk is now under its floor
    assert refused_for_room(_upload_photo(client, org_headers, event["id"], "b.jpg"))
    assert client.delete(f"/api/events/{event['id']}", headers=org_headers).status_code == 204
    drain_jobs()  # the purge: database writes and file deletions, never refused for room
    assert _stored_files(media) == []
    session.expire_all()
    assert session.scalars(select(Photo)).all() == []


def test_a_photo_waiting_for_room_for_its_copies_is_postponed_not_failed(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any], disk: FakeDisk, session: Session
) -> None:
    photo_id = upload_photos(client, org_headers, event["id"], {"a.jpg": fixture_bytes("obama.jpg")})["a.jpg"]
    disk.set_free(GIB // 2)  # others' uploads took the room before the face worker ran
    drain_jobs()
    photo = session.get(Photo, photo_id)
    assert photo is not None
    assert (photo.status, photo.attempts, photo.error_code) == (PhotoStatus.pending, 0, "storage_full")
    disk.set_free(10 * GIB)
    session.execute(update(Photo).where(Photo.id == photo_id).values(available_at=utcnow()))
    session.commit()
    drain_jobs()
    session.expire_all()
    photo = session.get(Photo, photo_id)
    assert photo is not None and photo.status == PhotoStatus.indexed


def test_the_health_check_and_metrics_show_the_disk_under_its_floor(
    client: TestClient, disk: FakeDisk
) -> None:
    healthy = client.get("/api/health-check").json()
    assert healthy["status"] == "ok" and healthy["storage"]["ok"] is True
    disk.set_free(GIB // 2)
    r = client.get("/api/health-check")
    # Still 200: everything but uploads is served, a load balancer must not take the node out.
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "degraded" and body["storage"]["ok"] is False
    assert "floor" in body["storage"]["reason"] and "free_bytes" not in body["storage"]
    operator = client.get("/api/health-check", headers=ops_headers()).json()["storage"]
    assert (operator["free_bytes"], operator["min_free_bytes"]) == (GIB // 2, GIB)
    metrics = client.get("/metrics", headers=ops_headers()).text
    samples = dict(line.split(" ", 1) for line in metrics.splitlines() if line.startswith("storage_"))
    assert float(samples["storage_uploads_refused"]) == 1
    assert float(samples["storage_free_bytes"]) == GIB // 2
    assert float(samples["storage_min_free_bytes"]) == GIB


def test_a_floor_just_above_the_real_free_space_refuses_the_next_upload(
    client: TestClient, guest_headers: dict[str, str], media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real disk under DATA_DIR, read by the real ``os.statvfs``."""
    free = space.reading(fresh=True).free_bytes
    monkeypatch.setattr(get_settings(), "storage_min_free_bytes", free + 256 * 1024 * 1024)
    selfie = {"file": ("s.jpg", fixture_bytes("obama.jpg"))}
    assert client.post("/api/upload-selfie", files=selfie, headers=guest_headers).status_code == 507
    monkeypatch.setattr(get_settings(), "storage_min_free_bytes", 0)
    assert client.post("/api/upload-selfie", files=selfie, headers=guest_headers).status_code == 202


def test_the_runtime_files_are_off_the_data_disk_by_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", node_name="node-a")
    run = settings.node_dir
    assert tmp_path not in run.parents
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):  # noqa: S108
        assert run.parent == Path("/dev/shm")  # noqa: S108
    # Each node and DATA_DIR its own: servers on one machine never share sockets or metrics.
    assert Settings(data_dir=tmp_path / "other", node_name="node-a").node_dir != run
    assert Settings(data_dir=tmp_path / "data", node_name="node-b").node_dir != run
    assert Settings(data_dir=tmp_path / "data", node_name="node-a").node_dir == run
    assert Settings(data_dir=tmp_path, run_dir=tmp_path / "mine").node_dir == tmp_path / "mine"


def test_a_run_dir_someone_else_prepared_is_refused(tmp_path: Path) -> None:
    from app.ops.startup import prepare_run_dir

    elsewhere = tmp_path / "theirs"
    elsewhere.mkdir()
    trap = tmp_path / "run"
    trap.symlink_to(elsewhere)  # made first by another user, to read or feed our sockets
    with pytest.raises(SystemExit, match="not a folder of this user"):
        prepare_run_dir(Settings(data_dir=tmp_path, run_dir=trap))
    mine = prepare_run_dir(Settings(data_dir=tmp_path, run_dir=tmp_path / "mine"))
    assert mine.stat().st_mode & 0o777 == 0o700
