"""Organizer photo upload, indexing progress, failures with reasons, what is served."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.faces.models import Face
from tests.helpers import drain_jobs, login, make_event, make_organizer, register, upload_photos
from tools.photos import fixture_bytes


def with_gps(name: str) -> bytes:
    im = Image.open(io.BytesIO(fixture_bytes(name)))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif, quality=90)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)
    return data


def test_bulk_upload_accepts_images_and_rejects_each_bad_file_with_a_reason(
    client: TestClient, org_headers: dict[str, str]
) -> None:
    event = make_event(client, org_headers)
    files = [
        ("files", ("a.jpg", fixture_bytes("obama2.jpg"))),
        ("files", ("notes.txt", b"not an image")),
        ("files", ("b.png", fixture_bytes("Tom_Hanks_54745.png"))),
        ("files", ("empty.jpg", b"")),
    ]
    r = client.post(f"/api/events/{event['id']}/photos", files=files, headers=org_headers)
    assert r.status_code == 202
    body = r.json()
    assert [p["filename"] for p in body["accepted"]] == ["a.jpg", "b.png"]
    assert {p["filename"]: p["error"]["code"] for p in body["rejected"]} == {
        "notes.txt": "unsupported_format",
        "empty.jpg": "unsupported_format",
    }
    counts = client.get(f"/api/events/{event['id']}", headers=org_headers).json()["photos"]
    assert counts == {"pending": 2, "processing": 0, "indexed": 0, "failed": 0}


def test_a_file_over_the_size_limit_is_rejected_alone(
    client: TestClient, org_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "photo_max_bytes", 200_000)
    event = make_event(client, org_headers)
    files = [
        ("files", ("big.jpg", fixture_bytes("obama3.jpg"))),
        ("files", ("small.png", fixture_bytes("Tom_Hanks_54745.png"))),
    ]
    body = client.post(f"/api/events/{event['id']}/photos", files=files, headers=org_headers).json()
    assert [p["filename"] for p in body["accepted"]] == ["small.png"]
    assert body["rejected"][0]["error"]["code"] == "file_too_large"


def test_indexing_stores_one_face_per_person_and_reports_progress(
    client: TestClient, session: Session, org_headers: dict[str, str]
) -> None:
    event = make_event(client, org_headers)
    ids = upload_photos(
        client,
        org_headers,
        event["id"],
        {"group.jpg": fixture_bytes("t1.jpg"), "mask.jpg": fixture_bytes("mask_blue.jpg")},
    )
    assert drain_jobs() == 2
    body = client.get(f"/api/events/{event['id']}", headers=org_headers).json()
    assert body["photos"] == {"pending": 0, "processing": 0, "indexed": 2, "failed": 0}
    assert body["faces"] == 6
    boxes = session.execute(
        select(Face.left, Face.top, Face.right, Face.bottom).where(Face.photo_id == ids["group.jpg"])
    ).all()
    assert len(boxes) == 6 and all(r > left and b > t for left, t, r, b in boxes)


def test_a_photo_that_cannot_be_decoded_fails_with_its_reason(
    client: TestClient, org_headers: dict[str, str]
) -> None:
    event = make_event(client, org_headers)
    whole = fixture_bytes("obama2.jpg")
    truncated = whole[: len(whole) // 2]  # the header is fine, the pixels stop halfway
    upload_photos(
        client, org_headers, event["id"], {"cut.jpg": truncated, "ok.jpg": fixture_bytes("obama2.jpg")}
    )
    drain_jobs()
    counts = client.get(f"/api/events/{event['id']}", headers=org_headers).json()["photos"]
    assert counts == {"pending": 0, "processing": 0, "indexed": 1, "failed": 1}
    failed = client.get(
        f"/api/events/{event['id']}/photos", params={"status": "failed"}, headers=org_headers
    ).json()["photos"]
    assert [p["filename"] for p in failed] == ["cut.jpg"]
    assert failed[0]["error"]["code"] == "unsupported_format"
    assert "decoded" in failed[0]["error"]["message"]


def test_served_photos_have_no_gps_and_thumbnails_are_small(
    client: TestClient, org_headers: dict[str, str]
) -> None:
    event = make_event(client, org_headers)
    ids = upload_photos(client, org_headers, event["id"], {"gps.jpg": with_gps("obama3.jpg")})
    drain_jobs()
    original = client.get(f"/api/photos/{ids['gps.jpg']}/original", headers=org_headers)
    assert original.status_code == 200 and original.headers["content-type"] == "image/jpeg"
    served = Image.open(io.BytesIO(original.content))
    assert not served.getexif().get_ifd(0x8825)
    assert served.size == Image.open(io.BytesIO(fixture_bytes("obama3.jpg"))).size
    thumb = Image.open(
        io.BytesIO(client.get(f"/api/photos/{ids['gps.jpg']}/thumbnail", headers=org_headers).content)
    )
    assert max(thumb.size) == 480
    assert not thumb.getexif()


def test_photos_are_not_served_before_they_are_processed(
    client: TestClient, org_headers: dict[str, str]
) -> None:
    event = make_event(client, org_headers)
    ids = upload_photos(client, org_headers, event["id"], {"a.jpg": fixture_bytes("obama2.jpg")})
    r = client.get(f"/api/photos/{ids['a.jpg']}/thumbnail", headers=org_headers)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "photo_not_ready")


def test_only_the_event_organizer_uploads_and_lists_photos(
    client: TestClient, session: Session, org_headers: dict[str, str]
) -> None:
    event = make_event(client, org_headers)
    other = login(client, make_organizer(session)["username"])
    files = [("files", ("a.jpg", fixture_bytes("obama2.jpg")))]
    assert client.post(f"/api/events/{event['id']}/photos", files=files, headers=other).status_code == 404
    guest = register(client, event["code"], "guest").json()
    guest_headers = {"Authorization": f"Bearer {guest['access_token']}"}
    assert (
        client.post(f"/api/events/{event['id']}/photos", files=files, headers=guest_headers).status_code
        == 403
    )
    assert client.get(f"/api/events/{event['id']}/photos", headers=other).status_code == 404


def test_a_guest_not_matched_in_a_photo_cannot_fetch_it(
    client: TestClient, org_headers: dict[str, str]
) -> None:
    event = make_event(client, org_headers)
    ids = upload_photos(client, org_headers, event["id"], {"a.jpg": fixture_bytes("obama2.jpg")})
    drain_jobs()
    guest = register(client, event["code"], "guest").json()
    headers = {"Authorization": f"Bearer {guest['access_token']}"}
    assert client.get(f"/api/photos/{ids['a.jpg']}/original", headers=headers).status_code == 404
    assert client.get("/api/photos/999999/original", headers=headers).status_code == 404


def test_upload_without_files_is_a_clear_422(client: TestClient, org_headers: dict[str, str]) -> None:
    event = make_event(client, org_headers)
    r = client.post(f"/api/events/{event['id']}/photos", headers=org_headers)
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"] == "files"


def test_no_faces_are_stored_twice_for_one_photo(
    client: TestClient, session: Session, org_headers: dict[str, str]
) -> None:
    event = make_event(client, org_headers)
    upload_photos(client, org_headers, event["id"], {"a.jpg": fixture_bytes("obama2.jpg")})
    drain_jobs()
    assert drain_jobs() == 0
    assert session.scalar(select(func.count()).select_from(Face)) == 1


def test_too_many_files_in_one_request_is_413(
    client: TestClient, org_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "photo_upload_max_files", 2)
    event = make_event(client, org_headers)
    files = [("files", (f"{i}.png", fixture_bytes("Tom_Hanks_54745.png"))) for i in range(3)]
    r = client.post(f"/api/events/{event['id']}/photos", files=files, headers=org_headers)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "too_many_files")
