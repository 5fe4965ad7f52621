"""Azure Face as the face provider, its behaviour: the real SDK client against a fake Face API
over HTTP finds a guest's photos end to end, refuses unusable selfies, erases selfies, photos
and events at Azure, matches in the details (face ids detected again, training, untrained
lists, image conversion), and is configured safely.

The fake (``tests.fakes.azure_face``) runs the local dlib engine behind Azure's REST
endpoints, so real photos match as they would. Every test gets a fresh fake and a freshly
built provider (fixtures ``fake`` and ``azure`` in ``tests/faces/conftest.py``, helpers in
``tests/faces/azure_support.py``); timeouts, retries, the circuit breaker and rate limits are
in ``test_azure_reliability.py``.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from pydantic import ValidationError

from app.core.config import Settings, get_settings
from app.core.database import session_scope
from app.faces.engine import LocalDlibEngine
from app.faces.providers.azure import AzureProvider
from app.faces.providers.azure.images import prepare_image
from app.faces.providers.base import GuestSelfies, StoredFace
from app.faces.search import EventFaces
from app.selfies.models import Selfie
from tests.faces.azure_support import direct, fixture_image, jpeg
from tests.fakes.azure_face import FakeAzureFace, FakeList
from tests.fixtures.events import IndexedEvent
from tests.helpers import drain_jobs
from tools.photos import fixture_bytes, side_by_side

PROJECT = Path(__file__).resolve().parents[2]

A_PHOTOS = {"a2.jpg", "a3.jpg", "a_rgba.png", "a_and_b.jpg"}


# --- end to end through the API -----------------------------------------------------------------


def test_guest_selfie_finds_exactly_their_photos_through_azure(
    client: TestClient, azure: AzureProvider, fake: FakeAzureFace
) -> None:
    party = IndexedEvent(client, "Azure Gala")
    party.upload(
        {
            "a2.jpg": fixture_bytes("obama2.jpg"),
            "a3.jpg": fixture_bytes("obama3.jpg"),
            "a_rgba.png": fixture_bytes("32bit.png"),
            "b.jpg": fixture_bytes("biden.jpg"),
            "c.png": fixture_bytes("Tom_Hanks_54745.png"),
            "a_and_b.jpg": side_by_side("obama3.jpg", "biden.jpg"),
        }
    )
    drain_jobs()
    event = client.get(f"/api/events/{party.event['id']}", headers=party.org).json()
    assert event["photos"] == {"pending": 0, "processing": 0, "indexed": 6, "failed": 0}
    assert event["faces"] == 7
    # Every face went to the event's large face list, which was trained with all of them.
    azure_list = fake.lists[f"event-{party.event['id']}"]
    assert len(azure_list.faces) == 7 and azure_list.trained is not None and len(azure_list.trained) == 7
    assert azure_list.recognition_model == "recognition_04"

    guest = party.guest()
    state = party.selfie(guest, fixture_bytes("obama.jpg"))
    assert state["status"] == "ready" and state["matches"] == len(A_PHOTOS)
    assert party.my_photos(guest) == A_PHOTOS
    distances = [p["distance"] for p in client.get("/api/my-photos", headers=guest).json()["photos"]]
    assert distances == sorted(distances) and max(distances) <= 1 - get_settings().azure_face_min_confidence
    # The selfie was enrolled in the deployment-wide selfie list, tagged with its id.
    enrolled = fake.lists["selfies"].faces
    assert [user_data for _, user_data in enrolled.values()] == [str(state["selfie_id"])]
    with session_scope() as session:
        selfie = session.get(Selfie, state["selfie_id"])
        assert selfie is not None and selfie.provider == "azure"
        assert selfie.descriptor is not None and selfie.descriptor.decode() in enrolled


def test_photos_indexed_after_the_selfie_are_matched_to_it(
    client: TestClient, azure: AzureProvider, fake: FakeAzureFace
) -> None:
    party = IndexedEvent(client, "Azure Gala")
    guest = party.guest()
    assert party.selfie(guest, fixture_bytes("obama.jpg"))["status"] == "ready"
    assert party.my_photos(guest) == set()
    party.upload({"late_a.jpg": fixture_bytes("obama2.jpg"), "late_b.jpg": fixture_bytes("biden.jpg")})
    drain_jobs()
    assert party.my_photos(guest) == {"late_a.jpg"}
    assert fake.calls["find_similar"] >= 2  # each new photo's faces against the selfie list


def test_erasures_reach_azure_selfie_photo_and_event(
    client: TestClient, azure: AzureProvider, fake: FakeAzureFace
) -> None:
    party = IndexedEvent(client, "Azure Gala")
    ids = party.upload(
        {"a.jpg": fixture_bytes("obama2.jpg"), "ab.jpg": side_by_side("obama3.jpg", "biden.jpg")}, index=True
    )
    guest = party.guest()
    assert party.selfie(guest, fixture_bytes("obama.jpg"))["status"] == "ready"
    event_list = f"event-{party.event['id']}"
    assert len(fake.lists["selfies"].faces) == 1 and len(fake.lists[event_list].faces) == 3

    assert client.delete("/api/selfie", headers=guest).status_code == 204
    drain_jobs()
    assert fake.lists["selfies"].faces == {}
    assert not (fake.lists["selfies"].trained or {})  # retrained: find-similar no longer sees it

    r = client.delete(f"/api/events/{party.event['id']}/photos/{ids['ab.jpg']}", headers=party.org)
    assert r.status_code == 204
    drain_jobs()
    assert len(fake.lists[event_list].faces) == 1

    assert client.delete(f"/api/events/{party.event['id']}", headers=party.org).status_code == 204
    drain_jobs()
    assert event_list not in fake.lists


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: fixture_bytes("mask_white.jpg"), "no_face"),
        (lambda: fixture_bytes("t1.jpg"), "multiple_faces"),
        (lambda: jpeg(fixture_image("obama.jpg").filter(ImageFilter.GaussianBlur(6))), "low_quality"),
        (lambda: jpeg(ImageEnhance.Brightness(fixture_image("obama.jpg")).enhance(0.15)), "low_quality"),
        (lambda: jpeg(ImageOps.scale(fixture_image("obama.jpg"), 0.22)), "face_too_small"),
    ],
    ids=["mask", "group", "blurred", "dark", "small"],
)
def test_unusable_selfies_are_refused_with_an_actionable_reason(
    client: TestClient, azure: AzureProvider, fake: FakeAzureFace, make: Any, code: str
) -> None:
    party = IndexedEvent(client, "Azure Gala")
    guest = party.guest()
    state = party.selfie(guest, make())
    assert state["status"] == "rejected", state
    error = state["error"]
    assert error["code"] == code and len(error["message"]) > 30
    if code == "low_quality":
        assert "light" in error["message"] and "steady" in error["message"]
    # Nothing is kept: no matches for the guest, nothing enrolled in Azure.
    assert state["matches"] == 0
    assert "selfies" not in fake.lists or not fake.lists["selfies"].faces


# --- matching details ---------------------------------------------------------------------------


def test_a_new_photo_is_matched_even_when_its_face_ids_must_be_detected_again(fake: FakeAzureFace) -> None:
    provider = direct(fake)
    selfie = fixture_bytes("obama.jpg")
    analysis = provider.analyze_selfie(selfie, strict=True)
    signature = provider.selfie_signature(analysis, selfie_id=41, image=selfie)
    photo = side_by_side("biden.jpg", "obama3.jpg")
    faces = provider.index_photo(photo, event_id=9)
    assert len(faces) == 2 and faces[0].box.left < faces[1].box.left
    stored = [StoredFace(100 + i, f.box, provider.face_signature(f)) for i, f in enumerate(faces)]
    guests = GuestSelfies.of([(41, 7, signature), (42, 8, b"some-other-persisted-id")])
    provider = direct(fake)  # another worker process (or a later retry): no faceId cached
    detects = fake.calls["detect"]
    (match,) = provider.find_selfies(faces=stored, image=lambda: photo, selfies=guests)
    assert fake.calls["detect"] == detects + 1
    assert (match.selfie_id, match.user_id, match.face_id) == (41, 7, 101)  # the right-hand face
    assert 0 <= match.distance <= 0.5


def test_new_faces_are_findable_once_a_training_that_includes_them_succeeded(fake: FakeAzureFace) -> None:
    provider = direct(fake)
    provider.analyze_selfie(fixture_bytes("obama2.jpg"), strict=True)  # the fake now answers it at once
    fake.train_seconds = 0.3
    # Another worker's training of the event's list is running when ours is asked for (409).
    # The Azure SDK is untyped.
    lists = provider.client.large_face_list
    lists.create("event-3", name="event-3", recognition_model="recognition_04")  # type: ignore[no-untyped-call]
    lists.train("event-3")  # type: ignore[no-untyped-call]
    (face,) = provider.index_photo(fixture_bytes("obama2.jpg"), event_id=3)
    assert fake.calls["train"] == 3  # the other one, ours refused with 409, ours again after it
    trained = fake.lists["event-3"].trained
    assert trained is not None and face.ref in trained


def test_missing_or_untrained_lists_have_no_matches(fake: FakeAzureFace, session: Any) -> None:
    provider = direct(fake)
    selfie = fixture_bytes("obama.jpg")
    signature = provider.selfie_signature(
        provider.analyze_selfie(selfie, strict=True), selfie_id=1, image=selfie
    )
    faces = EventFaces(session=session, model=provider.model)
    assert provider.find_photos(signature=signature, image=lambda: selfie, event_ids=[5], faces=faces) == []
    fake.lists["event-6"] = FakeList("event-6", "event-6", "recognition_04")  # created, never trained
    assert provider.find_photos(signature=signature, image=lambda: selfie, event_ids=[6], faces=faces) == []


def test_uploads_azure_cannot_take_are_sent_as_an_upright_jpeg(fake: FakeAzureFace) -> None:
    provider = direct(fake)
    upright = fixture_image("obama.jpg")
    (expected,) = (face.box for face in LocalDlibEngine().index_photo(jpeg(upright)))
    webp = io.BytesIO()
    upright.save(webp, "WEBP", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    rotated = jpeg(upright.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())
    for data in (webp.getvalue(), rotated):
        prepared, width, height = prepare_image(data)
        assert prepared.data[:3] == b"\xff\xd8\xff" and (width, height) == upright.size
        box = provider.analyze_selfie(data, strict=True).face.box
        assert max(abs(box.left - expected.left), abs(box.top - expected.top)) <= 6


# --- configuration ------------------------------------------------------------------------------


def test_start_up_refuses_an_incomplete_azure_configuration() -> None:
    with pytest.raises(ValidationError, match="AZURE_FACE_KEY"):
        Settings(
            _env_file=None,
            face_provider="azure",
            azure_face_endpoint="https://example.cognitiveservices.azure.com/",
            azure_face_key="",
        )
    with pytest.raises(ValidationError, match="AZURE_FACE_ENDPOINT and AZURE_FACE_KEY"):
        Settings(_env_file=None, face_provider="azure")


def test_the_local_provider_never_imports_the_azure_sdk() -> None:
    code = (
        "import sys\n"
        "from app.core.config import Settings\n"
        "from app.faces.providers import build_provider\n"
        "provider = build_provider(Settings(_env_file=None, face_provider='local'))\n"
        "ours = 'app.faces.providers.azure'\n"
        "loaded = sorted(m for m in sys.modules\n"
        "                if m.split('.')[0] in ('azure', 'msrest') or m.startswith(ours))\n"
        "print(provider.name, loaded)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_FACE_")}
    env["FACE_PROVIDER"] = "local"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "local []"


def test_a_replaced_selfie_face_is_deleted_from_azure(
    fake: FakeAzureFace, azure: AzureProvider, client: TestClient
) -> None:
    party = IndexedEvent(client, "Azure Gala")
    party.upload({"a2.jpg": fixture_bytes("obama2.jpg")})
    drain_jobs()
    guest = party.guest()
    party.selfie(guest, fixture_bytes("obama.jpg"))
    first = set(fake.lists[azure.selfie_list].faces)
    party.selfie(guest, fixture_bytes("obama3.jpg"))
    drain_jobs()  # the erasure at Azure is a job of its own, queued with the new selfie
    remaining = set(fake.lists[azure.selfie_list].faces)
    assert len(first) == 1 and len(remaining) == 1 and first.isdisjoint(remaining)
    assert fake.calls["delete_face"] == 1
    assert party.my_photos(guest) == {"a2.jpg"}
