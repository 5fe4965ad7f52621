"""A selfie costs the face workers a bounded amount (no 16-bit image, a lower pixel limit for
what must be decoded in full, a reduced copy searched), and one event's crowd of selfies does
not make the guests of every other event wait behind it."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from app.core import storage
from app.core.config import get_settings
from app.core.database import session_scope
from app.faces.images import load_rgb_reduced
from app.selfies.models import Selfie, SelfieStatus
from tests.helpers import bearer, drain_jobs, make_event, register
from tools.photos import fixture_bytes, fixture_image


def _sixteen_bit_png(side: int) -> bytes:
    ramp = (np.arange(side * side, dtype=np.uint32) % 65536).astype(np.uint16).reshape(side, side)
    out = io.BytesIO()
    Image.fromarray(ramp).save(out, "PNG")
    return out.getvalue()


def _face(width: int, fmt: str) -> bytes:
    face = fixture_image("obama.jpg")
    out = io.BytesIO()
    face.resize((width, width * face.height // face.width)).save(out, fmt)
    return out.getvalue()


def _upload(client: TestClient, headers: dict[str, str], data: bytes, name: str) -> Any:
    return client.post("/api/upload-selfie", files={"file": (name, data)}, headers=headers)


def test_a_16_bit_selfie_under_the_pixel_limit_is_refused_at_upload(
    client: TestClient, guest_headers: dict[str, str]
) -> None:
    bomb = _sixteen_bit_png(4800)  # 23 MP, under the 24 MP limit; 200 KB that decode to 500 MB
    assert len(bomb) < 1024 * 1024
    r = _upload(client, guest_headers, bomb, "s.png")
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_format")
    assert "16" in r.json()["error"]["message"] and "8-bit" in r.json()["error"]["message"]


def test_a_selfie_decoded_in_full_has_a_lower_pixel_limit_than_a_jpeg(
    client: TestClient, guest_headers: dict[str, str]
) -> None:
    width = 3600  # 3600 x 4500: 16 MP
    assert width * width * 5 // 4 > get_settings().selfie_max_decode_pixels
    r = _upload(client, guest_headers, _face(width, "PNG"), "s.png")
    assert (r.status_code, r.json()["error"]["code"]) == (413, "image_too_large")
    assert "JPEG" in r.json()["error"]["message"]
    assert _upload(client, guest_headers, _face(width, "JPEG"), "s.jpg").status_code == 202  # decoded reduced


def test_a_costly_selfie_already_queued_is_refused_by_the_face_worker(
    client: TestClient, guest_headers: dict[str, str]
) -> None:
    user_id = int(client.get("/api/me", headers=guest_headers).json()["id"])
    with session_scope() as session:  # queued before the bounds existed
        storage.save(f"selfies/{user_id}/old.png", _sixteen_bit_png(4800))
        session.add(
            Selfie(user_id=user_id, image_key=f"selfies/{user_id}/old.png", status=SelfieStatus.pending)
        )
    drain_jobs()
    state = client.get("/api/selfie", headers=guest_headers).json()
    assert (state["status"], state["error"]["code"]) == ("rejected", "unsupported_format")


def test_a_large_png_selfie_is_searched_on_a_reduced_copy() -> None:
    img, factor = load_rgb_reduced(_face(3400, "PNG"), max_pixels=50_000_000, side=1600)
    assert 1600 <= max(img.size) < 3200 and factor >= 2


def test_a_guest_of_another_event_is_checked_before_a_crowded_events_queue(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any]
) -> None:
    from app.jobs.runner import run_one
    from app.selfies.jobs import SELFIE_JOB

    crowd = [bearer(register(client, event["code"], f"crowd{i}")) for i in range(6)]
    for headers in crowd:  # the crowd's selfies are queued first...
        assert _upload(client, headers, fixture_bytes("obama.jpg"), "s.jpg").status_code == 202
    other_event = make_event(client, org_headers, "Small dinner")
    late = bearer(register(client, other_event["code"], "late"))
    assert _upload(client, late, fixture_bytes("biden.jpg"), "s.jpg").status_code == 202
    assert run_one(SELFIE_JOB, worker_id="fair-worker")  # ...and one selfie is checked
    assert client.get("/api/selfie", headers=late).json()["status"] == "ready"
    with session_scope() as session:
        waiting = session.scalars(select(Selfie.status).where(Selfie.status == SelfieStatus.pending)).all()
    assert len(waiting) == len(crowd)
