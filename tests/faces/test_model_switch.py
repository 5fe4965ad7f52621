"""Switching the recognizer on a live service: the event's faces are described again by a
durable job whose progress the organizer sees, guests keep their photos, and descriptors of
two models are never compared."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.core.config import get_settings
from app.core.database import session_scope
from app.faces.models import Face
from app.faces.providers import get_face_provider
from app.faces.recognizers import DLIB_MODEL, SFACE_MODEL
from app.photos.models import Photo, PhotoStatus
from app.photos.reembed import queue_reembeds
from tests.helpers import drain_jobs, selfie_verdict, upload_photos
from tools.accounts import PASSWORD
from tools.photos import fixture_bytes

CSRF = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


@pytest.fixture
def engine_switch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    settings = get_settings()

    def use(detector: str, recognizer: str) -> None:
        monkeypatch.setattr(settings, "face_detector", detector)
        monkeypatch.setattr(settings, "face_recognizer", recognizer)
        get_face_provider.cache_clear()

    yield use
    get_face_provider.cache_clear()


def _mine(client: TestClient, headers: dict[str, str], ids: dict[str, int]) -> set[str]:
    names = {v: k for k, v in ids.items()}
    return {names[p["id"]] for p in client.get("/api/my-photos", headers=headers).json()["photos"]}


@pytest.fixture
def indexed_by_dlib(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any], engine_switch: Any
) -> dict[str, int]:
    """obama2.jpg in the event, its face found and described by dlib (the engine in use)."""
    engine_switch("hog", "dlib")
    ids = upload_photos(client, org_headers, event["id"], {"a2.jpg": fixture_bytes("obama2.jpg")})
    drain_jobs()
    return ids


def _dashboard(username: str, event_id: int) -> str:
    """The organizer's event page, in English, signed in through the login form."""
    from main import app

    with TestClient(app, base_url="https://testserver", headers={"Accept-Language": "en"}) as web:
        token = CSRF.search(web.get("/login").text)
        assert token
        form = {"csrf_token": token.group(1), "login": username, "password": PASSWORD}
        web.post("/login", data=form, follow_redirects=False)
        return html.unescape(web.get(f"/organizer/events/{event_id}").text)


def _models() -> set[str]:
    with session_scope() as session:
        return set(session.scalars(select(Face.model)))


def test_switching_the_recognizer_redescribes_every_face_and_guests_keep_their_photos(
    client: TestClient,
    organizer: dict[str, Any],
    org_headers: dict[str, str],
    event: dict[str, Any],
    guest_headers: dict[str, str],
    engine_switch: Any,
) -> None:
    engine_switch("hog", "dlib")
    assert selfie_verdict(client, guest_headers, fixture_bytes("obama.jpg"))["status"] == "ready"
    photos = {
        "a2.jpg": fixture_bytes("obama2.jpg"),
        "a3.jpg": fixture_bytes("obama3.jpg"),
        "b.jpg": fixture_bytes("biden.jpg"),
        "group.jpg": fixture_bytes("t1.jpg"),
    }
    ids = upload_photos(client, org_headers, event["id"], photos)
    drain_jobs()
    assert _mine(client, guest_headers, ids) == {"a2.jpg", "a3.jpg"}
    assert _models() == {DLIB_MODEL}

    engine_switch("yunet", "sface")
    with session_scope() as session:
        assert queue_reembeds(session=session, model=SFACE_MODEL) == [event["id"]]
    with session_scope() as session:  # queued once
        assert queue_reembeds(session=session, model=SFACE_MODEL) == []
    detail = client.get(f"/api/events/{event['id']}", headers=org_headers).json()
    assert detail["faces_reembed"] == {
        "model": SFACE_MODEL,
        "status": "pending",
        "photos_done": 0,
        "photos_total": 4,
    }
    assert "(0 / 4 photos)" in _dashboard(organizer["username"], event["id"])

    # A guest who arrives during the switch is checked by the new model and matched against
    # the new faces only: nothing yet, then everything once the job has run.
    client.post(
        "/api/register-with-event-code",
        json={
            "event_code": event["code"],
            "username": "late",
            "email": "late@example.com",
            "password": PASSWORD,
            "accept_face_processing": True,
        },
    )
    token = client.post("/api/login", json={"login": "late", "password": PASSWORD}).json()["access_token"]
    late = {"Authorization": f"Bearer {token}"}
    drain_jobs()

    detail = client.get(f"/api/events/{event['id']}", headers=org_headers).json()
    assert detail["faces_reembed"] == {
        "model": SFACE_MODEL,
        "status": "done",
        "photos_done": 4,
        "photos_total": 4,
    }
    assert _models() == {SFACE_MODEL}
    assert detail["faces"] == 1 + 1 + 1 + 6
    assert 'id="reembed"' not in _dashboard(organizer["username"], event["id"])

    # The guest of before keeps their photos (matches moved to the new faces) and is asked
    # for a new selfie; the new guest's selfie finds the same photos.
    assert _mine(client, guest_headers, ids) == {"a2.jpg", "a3.jpg"}
    assert client.get("/api/selfie", headers=guest_headers).json()["needs_new_selfie"] is True
    state = selfie_verdict(client, late, fixture_bytes("obama_partial_face.jpg"))
    assert state["status"] == "ready" and state["needs_new_selfie"] is False
    drain_jobs()
    assert _mine(client, late, ids) == {"a2.jpg", "a3.jpg"}

    assert selfie_verdict(client, guest_headers, fixture_bytes("obama.jpg"))["needs_new_selfie"] is False
    drain_jobs()
    assert _mine(client, guest_headers, ids) == {"a2.jpg", "a3.jpg"}


def test_faces_of_another_model_are_never_matched(
    client: TestClient, guest_headers: dict[str, str], indexed_by_dlib: dict[str, int], engine_switch: Any
) -> None:
    ids = indexed_by_dlib
    engine_switch("yunet", "sface")
    # No re-embedding queued: the selfie, checked by SFace, finds nothing among dlib's faces.
    assert selfie_verdict(client, guest_headers, fixture_bytes("obama.jpg"))["status"] == "ready"
    drain_jobs()
    assert _mine(client, guest_headers, ids) == set()


def test_a_switch_undone_before_its_job_ran_gives_way_to_the_configured_model(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any], indexed_by_dlib: dict[str, int]
) -> None:
    with session_scope() as session:  # queued for SFace, then the operator went back to dlib
        assert queue_reembeds(session=session, model=SFACE_MODEL) == [event["id"]]
    drain_jobs()
    detail = client.get(f"/api/events/{event['id']}", headers=org_headers).json()
    assert detail["faces_reembed"]["status"] == "superseded"
    assert _models() == {DLIB_MODEL}


def test_a_photo_whose_faces_were_found_before_the_switch_is_matched_with_the_new_model(
    client: TestClient, guest_headers: dict[str, str], indexed_by_dlib: dict[str, int], engine_switch: Any
) -> None:
    """The face pool restarted with the new recognizer between a photo's two steps (faces
    found and committed, matches not yet): the faces are found again by the new model."""
    ids = indexed_by_dlib
    with session_scope() as session:  # as a worker that died after the first step leaves it
        session.execute(update(Photo).values(status=PhotoStatus.processing, lease_expires_at=None))
    engine_switch("yunet", "sface")
    assert selfie_verdict(client, guest_headers, fixture_bytes("obama.jpg"))["status"] == "ready"
    drain_jobs()
    assert _mine(client, guest_headers, ids) == {"a2.jpg"}
    assert _models() == {DLIB_MODEL, SFACE_MODEL}  # the old face goes with the event's re-description
