"""Direct uploads to the bucket (real SeaweedFS) and content-hash dedupe: the node signs and
records, the bytes go to the bucket by presigned URLs (single PUT or multipart), "complete"
checks the object, the photo job indexes it; the same bytes are never stored twice, by either
upload path; wrong sizes, missing objects, lying hashes, foreign organizers and folder storage
are refused with their codes."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.core.storage import direct
from app.photos.models import Photo
from app.photos.uploads import sweep_abandoned_uploads
from tests.conftest import Bucket
from tests.helpers import drain_jobs, login, make_event, make_organizer
from tools.photos import fixture_bytes

JPEG = fixture_bytes("obama2.jpg")
PNG = fixture_bytes("Tom_Hanks_54745.png")


def describe(name: str, data: bytes, content_type: str = "image/jpeg", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "size": len(data),
        "content_type": content_type,
        "sha256": hashlib.sha256(data).hexdigest(),
    } | extra


def sign(client: TestClient, headers: dict[str, str], event_id: int, *files: dict[str, Any]) -> Any:
    r = client.post(f"/api/events/{event_id}/photos/uploads", json={"files": list(files)}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["files"]


def put(slot: dict[str, Any], data: bytes) -> None:
    r = httpx.put(slot["url"], content=data, headers=slot["headers"])
    assert r.status_code == 200, r.text


def complete(client: TestClient, headers: dict[str, str], event_id: int, photo_id: int, **body: Any) -> Any:
    return client.post(
        f"/api/events/{event_id}/photos/uploads/{photo_id}/complete", json=body, headers=headers
    )


@pytest.fixture
def org(client: TestClient, session: Session) -> dict[str, str]:
    make_organizer(session, "boss")
    return login(client, "boss")


def test_a_photo_goes_straight_to_the_bucket_is_indexed_and_is_never_stored_twice(
    s3_storage: Bucket, client: TestClient, org: dict[str, str], session: Session
) -> None:
    event_id = make_event(client, org)["id"]
    [slot] = sign(client, org, event_id, describe("a.jpg", JPEG))
    assert slot["status"] == "upload" and slot["expires_in"] == 3600
    assert slot["url"].startswith(s3_storage.server.endpoint_url) and slot["key"].startswith(
        f"photos/{event_id}/"
    )
    photo = session.get(Photo, slot["photo_id"])
    assert photo is not None and photo.status == "uploading"

    # Completing before the file is there is refused; the PUT goes to the bucket, not to us.
    r = complete(client, org, event_id, slot["photo_id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "upload_missing"
    put(slot, JPEG)
    r = complete(client, org, event_id, slot["photo_id"])
    assert r.status_code == 200 and r.json() == {"id": slot["photo_id"], "status": "pending"}
    assert complete(client, org, event_id, slot["photo_id"]).json()["status"] == "pending"  # idempotent

    assert drain_jobs() >= 1
    session.expire_all()
    photo = session.get(Photo, slot["photo_id"])
    assert photo is not None and photo.status == "indexed" and photo.faces_count == 1
    assert (photo.width, photo.height, photo.size_bytes) != (0, 0, 0)
    assert photo.content_hash == hashlib.sha256(JPEG).hexdigest()
    keys = s3_storage.stored_keys()
    assert {k.split("/")[0] for k in keys} == {"photos", "thumbs", "served"}

    # The same bytes again, by a direct upload (another browser) or the form: a duplicate.
    [again] = sign(client, org, event_id, describe("copy-of-a.jpg", JPEG))
    assert again == again | {"status": "duplicate", "photo_id": slot["photo_id"], "url": None}
    r = client.post(f"/api/events/{event_id}/photos", files=[("files", ("b.jpg", JPEG))], headers=org)
    assert r.status_code == 202
    assert r.json()["accepted"] == [{"id": slot["photo_id"], "filename": "b.jpg", "duplicate": True}]
    assert s3_storage.stored_keys() == keys
    assert len(session.scalars(select(Photo)).all()) == 1


def test_large_files_go_in_parts_and_a_wrong_size_or_unknown_upload_is_refused(
    s3_storage: Bucket,
    client: TestClient,
    org: dict[str, str],
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(direct, "MULTIPART_THRESHOLD", 1024 * 1024)
    monkeypatch.setattr(direct, "PART_BYTES", 5 * 1024 * 1024)
    big = JPEG + os.urandom(11 * 1024 * 1024)  # a real JPEG, then bytes its decoder ignores
    event_id = make_event(client, org)["id"]
    [slot] = sign(client, org, event_id, describe("big.jpg", big))
    assert slot["url"] is None and slot["upload_id"] and slot["part_bytes"] == 5 * 1024 * 1024
    assert [p["number"] for p in slot["parts"]] == [1, 2, 3]

    etags = []
    for part in slot["parts"]:
        start = (part["number"] - 1) * slot["part_bytes"]
        r = httpx.put(part["url"], content=big[start : start + slot["part_bytes"]])
        assert r.status_code == 200
        etags.append({"number": part["number"], "etag": r.headers["etag"]})
    r = complete(client, org, event_id, slot["photo_id"], upload_id="not-an-upload", parts=etags)
    assert r.status_code == 409 and r.json()["error"]["code"] == "upload_incomplete"
    r = complete(client, org, event_id, slot["photo_id"], upload_id=slot["upload_id"], parts=etags)
    assert r.status_code == 200 and r.json()["status"] == "pending", r.text
    drain_jobs()
    photo = session.get(Photo, slot["photo_id"])
    assert photo is not None and photo.status == "indexed" and photo.size_bytes == len(big)

    # A file that is not the size declared is deleted from the bucket and refused.
    [short] = sign(client, org, event_id, describe("short.png", PNG, "image/png"))
    put(short, PNG[:-100])
    r = complete(client, org, event_id, short["photo_id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "upload_size_mismatch"
    assert short["key"] not in s3_storage.stored_keys()
    put(short, PNG)  # sent again with the same URL: accepted
    assert complete(client, org, event_id, short["photo_id"]).json()["status"] == "pending"


def test_bounds_foreign_organizers_lying_hashes_and_abandoned_uploads(
    s3_storage: Bucket, client: TestClient, org: dict[str, str], session: Session
) -> None:
    event_id = make_event(client, org)["id"]
    answers = sign(
        client,
        org,
        event_id,
        describe("notes.txt", b"hello", "text/plain"),
        describe("huge.jpg", JPEG, size=2**40),
        describe("a.jpg", JPEG),
        describe("a-again.jpg", JPEG),
    )
    assert [a["status"] for a in answers] == ["rejected", "rejected", "upload", "duplicate"]
    assert [a["error"]["code"] for a in answers[:2]] == ["unsupported_format", "file_too_large"]
    assert answers[3]["photo_id"] == answers[2]["photo_id"]

    # Another organizer sees neither the event nor its uploads.
    make_organizer(session, "other")
    other = login(client, "other")
    r = client.post(
        f"/api/events/{event_id}/photos/uploads", json={"files": [describe("x.jpg", PNG)]}, headers=other
    )
    assert r.status_code in (403, 404)
    assert complete(client, other, event_id, answers[2]["photo_id"]).status_code in (403, 404)

    # A browser that lied about the hash: the photo job fails it and its file goes.
    [liar] = sign(client, org, event_id, describe("liar.png", PNG, "image/png", sha256="ab" * 32))
    put(liar, PNG)
    assert complete(client, org, event_id, liar["photo_id"]).status_code == 200
    drain_jobs()
    photo = session.get(Photo, liar["photo_id"])
    assert photo is not None and photo.status == "failed" and photo.error_code == "content_hash_mismatch"
    assert liar["key"] not in s3_storage.stored_keys()

    # The upload never completed (a.jpg, its object there) is erased by the daily sweep.
    put(answers[2], JPEG)
    session.execute(
        update(Photo)
        .where(Photo.id == answers[2]["photo_id"])
        .values(created_at=utcnow() - timedelta(days=2))
    )
    assert sweep_abandoned_uploads(session=session) == 1
    session.commit()
    assert session.get(Photo, answers[2]["photo_id"]) is None
    assert answers[2]["key"] not in s3_storage.stored_keys()


@pytest.fixture
def folder(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Local files in an empty DATA_DIR (set before anyone logs in: the key lives there)."""
    from app.core.config import get_settings

    monkeypatch.setattr(get_settings(), "data_dir", tmp_path)
    return tmp_path


def test_folder_storage_refuses_the_direct_path_and_the_form_dedupes_by_content(
    folder: Any, client: TestClient, org: dict[str, str], session: Session
) -> None:
    tmp_path = folder
    event_id = make_event(client, org)["id"]
    r = client.post(
        f"/api/events/{event_id}/photos/uploads", json={"files": [describe("a.jpg", JPEG)]}, headers=org
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "direct_upload_unavailable"

    files = [("files", ("a.jpg", JPEG)), ("files", ("b.png", PNG)), ("files", ("a-copy.jpg", JPEG))]
    r = client.post(f"/api/events/{event_id}/photos", files=files, headers=org)
    accepted = r.json()["accepted"]
    assert [a["duplicate"] for a in accepted] == [False, False, True]
    assert accepted[2]["id"] == accepted[0]["id"]
    again = client.post(f"/api/events/{event_id}/photos", files=[("files", ("b2.png", PNG))], headers=org)
    assert again.json()["accepted"] == [{"id": accepted[1]["id"], "filename": "b2.png", "duplicate": True}]
    rows = session.scalars(select(Photo).order_by(Photo.id)).all()
    assert [p.content_hash for p in rows] == [hashlib.sha256(d).hexdigest() for d in (JPEG, PNG)]
    assert len(list((tmp_path / "media" / "photos").rglob("*.*"))) == 2

    # Another event may hold the same bytes; a failed photo does not block sending it again.
    other_event = make_event(client, org, name="Other")["id"]
    r = client.post(f"/api/events/{other_event}/photos", files=[("files", ("a.jpg", JPEG))], headers=org)
    assert r.json()["accepted"][0]["duplicate"] is False
    session.execute(update(Photo).where(Photo.id == accepted[0]["id"]).values(status="failed"))
    session.commit()
    r = client.post(f"/api/events/{event_id}/photos", files=[("files", ("a.jpg", JPEG))], headers=org)
    assert r.json()["accepted"][0]["duplicate"] is False
