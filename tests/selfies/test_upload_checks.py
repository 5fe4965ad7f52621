"""POST /api/upload-selfie: the quick checks done before accepting, then the verdict the
guest_headers follows (state, long-poll, event stream)."""

from __future__ import annotations

import errno
import io
import json
import struct
import threading
import time
import zlib
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.core.config import get_settings
from tests.helpers import ThreadWorker, bearer, drain_jobs, login, make_event, make_organizer, register
from tools.photos import fixture_bytes


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


def test_a_non_image_is_415_unsupported_format(client: TestClient, guest_headers: dict[str, str]) -> None:
    r = client.post(
        "/api/upload-selfie", files={"file": ("s.pdf", b"%PDF-1.4 nothing here")}, headers=guest_headers
    )
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_format")


def test_a_gif_is_415_unsupported_format(client: TestClient, guest_headers: dict[str, str]) -> None:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64)).save(out, "GIF")
    r = client.post("/api/upload-selfie", files={"file": ("s.gif", out.getvalue())}, headers=guest_headers)
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_format")


def test_a_decompression_bomb_is_413_image_too_large(
    client: TestClient, guest_headers: dict[str, str]
) -> None:
    r = client.post(
        "/api/upload-selfie",
        files={"file": ("bomb.png", png_header_claiming(60_000, 60_000))},
        headers=guest_headers,
    )
    assert (r.status_code, r.json()["error"]["code"]) == (413, "image_too_large")
    assert "pixels" in r.json()["error"]["message"]


def test_a_file_over_the_byte_limit_is_413(
    client: TestClient, guest_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "selfie_max_bytes", 100_000)
    r = client.post(
        "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=guest_headers
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] in {"image_too_large", "payload_too_large"}


def test_a_missing_file_field_is_422(client: TestClient, guest_headers: dict[str, str]) -> None:
    r = client.post("/api/upload-selfie", data={"other": "x"}, headers=guest_headers)
    assert r.status_code == 422


def _upload(client: TestClient, headers: dict[str, str], name: str = "obama.jpg") -> Any:
    return client.post("/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes(name))}, headers=headers)


def test_a_selfie_is_accepted_at_once_as_checking_and_is_not_lost(
    client: TestClient, guest_headers: dict[str, str]
) -> None:
    r = _upload(client, guest_headers)
    assert r.status_code == 202
    assert r.json() == {"selfie_id": r.json()["selfie_id"], "status": "checking", "queue_position": 1}
    state = client.get("/api/selfie", headers=guest_headers).json()
    assert (state["status"], state["queue_position"], state["error"]) == ("checking", 1, None)
    drain_jobs()
    state = client.get("/api/selfie", headers=guest_headers).json()
    assert state["status"] == "ready" and state["selfie_id"] == r.json()["selfie_id"]
    assert state["queue_position"] is None and state["checked_at"] and state["matched_at"]


def test_a_crowd_of_selfies_is_never_refused_and_each_guest_sees_its_place_in_the_queue(
    client: TestClient, session: Session
) -> None:
    event = make_event(client, login(client, make_organizer(session)["username"]))
    guests = [bearer(register(client, event["code"], f"crowd{i}")) for i in range(12)]
    answers = [_upload(client, headers) for headers in guests]
    assert [r.status_code for r in answers] == [202] * 12
    assert [r.json()["queue_position"] for r in answers] == list(range(1, 13))
    assert drain_jobs() >= 12
    assert {client.get("/api/selfie", headers=h).json()["status"] for h in guests} == {"ready"}


def test_a_new_upload_cancels_the_selfie_still_waiting_for_its_check(
    client: TestClient, guest_headers: dict[str, str], session: Session
) -> None:
    from app.selfies.models import Selfie
    from tests.helpers import local_file

    first = _upload(client, guest_headers, "mask_blue.jpg").json()["selfie_id"]
    first_file = local_file(session.get_one(Selfie, first).image_key)
    assert first_file.exists()
    second = _upload(client, guest_headers).json()["selfie_id"]
    session.expire_all()
    assert session.get(Selfie, first) is None and not first_file.exists()
    drain_jobs()
    state = client.get("/api/selfie", headers=guest_headers).json()
    assert (state["selfie_id"], state["status"]) == (second, "ready")


def test_a_refused_selfie_shows_rejected_with_the_reason_to_act_on(
    client: TestClient, guest_headers: dict[str, str]
) -> None:
    _upload(client, guest_headers, "mask_blue.jpg")
    drain_jobs()
    state = client.get("/api/selfie", headers=guest_headers).json()
    assert state["status"] == "rejected" and state["error"]["code"] == "no_face"
    assert "face" in state["error"]["message"].lower()


def test_a_full_disk_is_the_one_reason_to_refuse_a_selfie_503_with_retry_after(
    client: TestClient, guest_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core import storage

    def disk_full(key: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage, "save", disk_full)
    r = _upload(client, guest_headers)
    assert (r.status_code, r.json()["error"]["code"]) == (503, "storage_full")
    assert int(r.headers["retry-after"]) >= 1
    assert client.get("/api/selfie", headers=guest_headers).status_code == 404


def test_the_long_poll_answers_as_soon_as_the_verdict_is_known(
    client: TestClient, guest_headers: dict[str, str]
) -> None:
    _upload(client, guest_headers)
    with ThreadWorker():
        state = client.get("/api/selfie", params={"wait": 30}, headers=guest_headers).json()
        assert state["status"] in ("matching", "ready")
        while state["status"] == "matching":
            state = client.get("/api/selfie", params={"wait": 30}, headers=guest_headers).json()
    assert state["status"] == "ready"


def test_the_long_poll_gives_up_after_wait_seconds_with_the_current_state(
    client: TestClient, guest_headers: dict[str, str]
) -> None:
    _upload(client, guest_headers)
    started = time.monotonic()
    state = client.get("/api/selfie", params={"wait": 0.5}, headers=guest_headers).json()
    assert state["status"] == "checking" and time.monotonic() - started >= 0.5


def test_wait_is_bounded_to_30_seconds(client: TestClient, guest_headers: dict[str, str]) -> None:
    r = client.get("/api/selfie", params={"wait": 31}, headers=guest_headers)
    assert r.status_code == 422


def test_the_event_stream_sends_the_state_now_and_at_every_change(
    client: TestClient, guest_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test client hands over a streamed body once it ends: a short-lived stream here
    # (the live stream through a real server is in tests/test_end_to_end.py).
    monkeypatch.setattr(get_settings(), "selfie_events_max_seconds", 4.0)
    _upload(client, guest_headers)
    worker = threading.Timer(1.0, drain_jobs)
    worker.start()
    with client.stream("GET", "/api/selfie/events", headers=guest_headers) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = list(r.iter_lines())
    worker.join()
    events = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]
    statuses = [e["status"] for e in events]
    assert statuses[0] == "checking" and statuses[-1] == "ready"
    assert statuses == sorted(set(statuses), key=statuses.index)  # each state once, in order
    assert "event: selfie" in lines and lines[0] == "retry: 2000"
