"""The synchronous checks of POST /api/upload-selfie done before any face work."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.core.config import get_settings
from tests.helpers import bearer, drain_jobs, fixture_bytes, login, make_event, make_organizer, register


@pytest.fixture
def guest(client: TestClient, session: Session) -> dict[str, str]:
    event = make_event(client, login(client, make_organizer(session)["username"]))
    return bearer(register(client, event["code"], "guest"))


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image (a decompression bomb's signature)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )


def test_upload_requires_a_login(client: TestClient) -> None:
    r = client.post("/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))})
    assert r.status_code == 401


def test_a_non_image_is_415_unsupported_format(client: TestClient, guest: dict) -> None:
    r = client.post("/api/upload-selfie", files={"file": ("s.pdf", b"%PDF-1.4 nothing here")}, headers=guest)
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_format")


def test_a_gif_is_415_unsupported_format(client: TestClient, guest: dict) -> None:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64)).save(out, "GIF")
    r = client.post("/api/upload-selfie", files={"file": ("s.gif", out.getvalue())}, headers=guest)
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_format")


def test_a_decompression_bomb_is_413_image_too_large(client: TestClient, guest: dict) -> None:
    r = client.post(
        "/api/upload-selfie", files={"file": ("bomb.png", png_header_claiming(60_000, 60_000))}, headers=guest
    )
    assert (r.status_code, r.json()["error"]["code"]) == (413, "image_too_large")
    assert "pixels" in r.json()["error"]["message"]


def test_a_file_over_the_byte_limit_is_413(
    client: TestClient, guest: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "selfie_max_bytes", 100_000)
    r = client.post(
        "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=guest
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] in {"image_too_large", "payload_too_large"}


def test_a_missing_file_field_is_422(client: TestClient, guest: dict) -> None:
    r = client.post("/api/upload-selfie", data={"other": "x"}, headers=guest)
    assert r.status_code == 422


def test_without_a_free_face_worker_the_upload_answers_processing_and_is_not_lost(
    client: TestClient, guest: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "selfie_check_timeout", 0.3)
    r = client.post(
        "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=guest
    )
    assert r.status_code == 202 and r.json()["status"] == "processing"
    assert client.get("/api/selfie", headers=guest).json()["status"] == "processing"
    drain_jobs()
    state = client.get("/api/selfie", headers=guest).json()
    assert state["status"] == "ready" and state["selfie_id"] == r.json()["selfie_id"]


def test_a_selfie_refused_after_the_wait_shows_failed_with_the_reason(
    client: TestClient, guest: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "selfie_check_timeout", 0.2)
    client.post(
        "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("mask_blue.jpg"))}, headers=guest
    )
    drain_jobs()
    state = client.get("/api/selfie", headers=guest).json()
    assert state["status"] == "failed" and state["reason"]["code"] == "no_face"


def test_when_face_workers_are_saturated_the_upload_is_503_with_retry_after(
    client: TestClient, session: Session, guest: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "selfie_check_timeout", 0.2)
    monkeypatch.setattr(get_settings(), "selfie_max_pending", 2)
    event = make_event(client, login(client, make_organizer(session)["username"]))
    others = [bearer(register(client, event["code"], f"other{i}")) for i in range(2)]
    for headers in others:
        r = client.post(
            "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=headers
        )
        assert r.status_code == 202
    r = client.post(
        "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=guest
    )
    assert (r.status_code, r.json()["error"]["code"]) == (503, "face_workers_busy")
    assert int(r.headers["retry-after"]) >= 1
    drain_jobs()
    r = client.post(
        "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=guest
    )
    assert r.status_code == 202
