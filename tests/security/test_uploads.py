"""Uploads are refused from their headers before their body is read, are read as a stream
with the limits applied while reading, and one guest cannot starve the others' selfie checks."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.core.config import get_settings
from tests.helpers import bearer, register, upload_photos
from tools.photos import fixture_bytes

BOUNDARY = "attackboundary"
BODY_BYTES = 150 * 1024 * 1024


def _send_big_upload(path: str, headers: dict[str, str]) -> tuple[int, int]:
    """Post a 150 MB multipart body to ``path`` through the ASGI app, produced lazily: the
    status, and how many body bytes the app pulled before answering."""
    from main import app

    consumed = 0
    chunk = b"x" * (256 * 1024)
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    total = BODY_BYTES
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal consumed
        if consumed == 0:
            consumed += len(head)
            return {"type": "http.request", "body": head, "more_body": True}
        if consumed >= total:
            return {"type": "http.disconnect"}
        consumed += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": consumed < total}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
            (b"content-length", str(total).encode()),
            *[(k.lower().encode(), v.encode()) for k, v in headers.items()],
        ],
    }

    async def run() -> None:
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)

    asyncio.run(run())
    return status, consumed


@pytest.fixture
def big_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # Let 150 MB through the body-size bound, so that only authorization can stop it.
    monkeypatch.setattr(get_settings(), "photo_upload_max_bytes", 2 * BODY_BYTES)
    monkeypatch.setattr(get_settings(), "selfie_max_bytes", 2 * BODY_BYTES)


def test_an_anonymous_photo_upload_is_refused_before_its_body_is_read(
    client: TestClient, event: dict[str, Any], big_limits: None
) -> None:
    status, consumed = _send_big_upload(f"/api/events/{event['id']}/photos", {})
    assert status == 401 and consumed < 1024 * 1024


def test_a_guest_photo_upload_and_a_foreign_event_are_refused_before_the_body_is_read(
    client: TestClient, event: dict[str, Any], session: Any, big_limits: None
) -> None:
    guest = bearer(register(client, event["code"], "sneaky"))
    status, consumed = _send_big_upload(f"/api/events/{event['id']}/photos", guest)
    assert status == 403 and consumed < 1024 * 1024
    from tests.helpers import login, make_organizer

    other_org = login(client, make_organizer(session)["username"])
    status, consumed = _send_big_upload(f"/api/events/{event['id']}/photos", other_org)
    assert status == 404 and consumed < 1024 * 1024


def test_an_anonymous_selfie_upload_is_refused_before_its_body_is_read(
    client: TestClient, big_limits: None
) -> None:
    status, consumed = _send_big_upload("/api/upload-selfie", {})
    assert status == 401 and consumed < 1024 * 1024


def test_a_file_over_the_limit_is_dropped_while_streaming_and_the_others_are_kept(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "photo_max_bytes", 200 * 1024)
    big = fixture_bytes("t1.jpg") + b"\0" * (300 * 1024)
    r = client.post(
        f"/api/events/{event['id']}/photos",
        files=[("files", ("big.jpg", big)), ("files", ("ok.jpg", fixture_bytes("obama2.jpg")))],
        headers=org_headers,
    )
    body = r.json()
    assert r.status_code == 202
    assert [a["filename"] for a in body["accepted"]] == ["ok.jpg"]
    assert [(x["filename"], x["error"]["code"]) for x in body["rejected"]] == [("big.jpg", "file_too_large")]


def test_more_files_than_allowed_is_413_and_nothing_is_kept(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "photo_upload_max_files", 2)
    files = [("files", (f"{i}.jpg", fixture_bytes("obama2.jpg"))) for i in range(3)]
    r = client.post(f"/api/events/{event['id']}/photos", files=files, headers=org_headers)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "too_many_files")
    listed = client.get(f"/api/events/{event['id']}/photos", headers=org_headers).json()
    assert listed["photos"] == []
    assert upload_photos(client, org_headers, event["id"], {"a.jpg": fixture_bytes("obama2.jpg")})


def _sixteen_bit_png(width: int, height: int) -> bytes:
    ramp = (np.arange(width * height, dtype=np.uint32) % 65536).astype(np.uint16).reshape(height, width)
    out = io.BytesIO()
    Image.fromarray(ramp).save(out, "PNG")  # mode I;16: a tiny file that decodes huge
    return out.getvalue()


def test_a_selfie_over_the_selfie_pixel_limit_is_413_at_upload(
    client: TestClient, guest_headers: dict[str, str]
) -> None:
    bomb = _sixteen_bit_png(7000, 7000)
    assert len(bomb) < 2 * 1024 * 1024
    r = client.post("/api/upload-selfie", files={"file": ("s.png", bomb)}, headers=guest_headers)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "image_too_large")


def test_an_image_whose_decoding_would_exceed_the_memory_budget_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.core.errors import PayloadTooLarge
    from app.faces.images import load_rgb, probe_image

    data = _sixteen_bit_png(3000, 3000)
    monkeypatch.setattr(get_settings(), "image_decode_max_mb", 40)
    with pytest.raises(PayloadTooLarge, match="memory"):
        probe_image(data, max_pixels=50_000_000)
    monkeypatch.setattr(get_settings(), "image_decode_max_mb", 768)
    assert load_rgb(data, max_pixels=50_000_000).size == (3000, 3000)


_DECODE_PEAK = """
import resource, sys
from pathlib import Path
from app.faces.images import load_rgb
data = Path(sys.argv[1]).read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
img = load_rgb(data, max_pixels=50_000_000)
print(img.size, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_decoding_a_16_bit_photo_takes_a_bounded_amount_of_memory(tmp_path: Path) -> None:
    png = tmp_path / "deep.png"
    png.write_bytes(_sixteen_bit_png(7000, 7000))
    out = subprocess.run(
        [sys.executable, "-c", _DECODE_PEAK, str(png)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    grown_mb = int(out[-1]) / 1024
    # 49 MP: the 16-bit image (196 MB as mode I), the 8-bit and RGB copies (49 + 147 MB), and
    # strips of work; whole-image int64 arithmetic took over 1 GB.
    assert grown_mb < 500, grown_mb


def test_one_guest_cannot_queue_selfies_without_end(
    client: TestClient, guest_headers: dict[str, str], throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_selfies_per_guest", "3/hour")
    statuses = [
        client.post(
            "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=guest_headers
        ).status_code
        for _ in range(5)
    ]
    assert statuses == [202, 202, 202, 429, 429]
    state = client.get("/api/selfie", headers=guest_headers).json()
    assert state["status"] == "checking"  # one selfie waits (each upload cancelled the previous)
