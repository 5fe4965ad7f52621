"""A guest's selfie finds exactly the event photos they appear in (real photos, real dlib).

One event is built once for the module from the fixtures: person A (Obama) in several
photos, B (Biden) and C (Tom Hanks) as distractors, the six-person group photo, and two
composites (A next to B, C next to the group).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from app.core.config import get_settings
from app.core.database import session_scope
from tests.conftest import truncate_all
from tests.helpers import (
    FIXTURES,
    PASSWORD,
    bearer,
    drain_jobs,
    fixture_bytes,
    login,
    make_event,
    make_organizer,
    register,
    selfie_verdict,
    side_by_side,
    upload_photos,
)

A_PHOTOS = {"a2.jpg", "a3.jpg", "a_rgba.png", "a_partial.jpg", "a_and_b.jpg"}
B_PHOTOS = {"b.jpg", "a_and_b.jpg"}
C_PHOTOS = {"c.png", "c_and_group.jpg"}


def mirrored(name: str, crop: tuple[float, float, float, float] | None = None, scale: float = 1.0) -> bytes:
    """Another picture of the same person: mirrored (cropped, scaled), re-encoded as JPEG."""
    im = ImageOps.exif_transpose(Image.open(FIXTURES / name)).convert("RGB")
    if crop:
        w, h = im.size
        im = im.crop((int(crop[0] * w), int(crop[1] * h), int(crop[2] * w), int(crop[3] * h)))
    if scale != 1.0:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    ImageOps.mirror(im).save(out, "JPEG", quality=92)
    return out.getvalue()


class World:
    def __init__(self, client: TestClient) -> None:
        from app.core.database import session_scope

        self.client = client
        with session_scope() as session:
            org = make_organizer(session)
        self.org = login(client, org["username"])
        self.event = make_event(client, self.org, "Gala")
        self.photos = upload_photos(
            client,
            self.org,
            self.event["id"],
            {
                "a2.jpg": fixture_bytes("obama2.jpg"),
                "a3.jpg": fixture_bytes("obama3.jpg"),
                "a_rgba.png": fixture_bytes("32bit.png"),
                "a_partial.jpg": fixture_bytes("obama_partial_face.jpg"),
                "b.jpg": fixture_bytes("biden.jpg"),
                "c.png": fixture_bytes("Tom_Hanks_54745.png"),
                "group.jpg": fixture_bytes("t1.jpg"),
                "a_and_b.jpg": side_by_side("obama3.jpg", "biden.jpg"),
                "c_and_group.jpg": side_by_side("Tom_Hanks_54745.png", "t1.jpg", height=900),
            },
        )
        drain_jobs()
        self.by_id = {v: k for k, v in self.photos.items()}
        self.users = 0

    def guest(self, event_code: str | None = None) -> dict[str, str]:
        self.users += 1
        return bearer(register(self.client, event_code or self.event["code"], f"guest{self.users}"))

    def names(self, my_photos: dict[str, Any]) -> set[str]:
        return {self.by_id.get(p["id"], str(p["id"])) for p in my_photos["photos"]}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    from main import app

    truncate_all()
    with TestClient(app) as client:
        yield World(client)
    truncate_all()


def upload_selfie(world: World, headers: dict[str, str], data: bytes, name: str = "selfie.jpg") -> Any:
    return selfie_verdict(world.client, headers, data, name)


def test_event_photos_are_indexed_with_one_descriptor_per_face(world: World) -> None:
    r = world.client.get(f"/api/events/{world.event['id']}", headers=world.org)
    body = r.json()
    assert body["photos"] == {"pending": 0, "processing": 0, "indexed": 9, "failed": 0}
    # 1 face in each of the six single-person photos, 6 in the group, 2 + 7 in the composites.
    listed = world.client.get(f"/api/events/{world.event['id']}/photos", headers=world.org).json()["photos"]
    faces = {p["filename"]: p["faces"] for p in listed}
    assert body["faces"] == sum(faces.values()) == 6 + 6 + 2 + 7
    assert faces["group.jpg"] == 6 and faces["a_and_b.jpg"] == 2 and faces["c_and_group.jpg"] == 7


def test_person_a_selfie_finds_exactly_a_photos_best_first(world: World) -> None:
    guest = world.guest()
    state = upload_selfie(world, guest, fixture_bytes("obama.jpg"))
    assert state["status"] == "ready" and state["matches"] == len(A_PHOTOS) and state["error"] is None
    mine = world.client.get("/api/my-photos", headers=guest).json()
    assert world.names(mine) == A_PHOTOS
    distances = [p["distance"] for p in mine["photos"]]
    assert distances == sorted(distances) and max(distances) <= get_settings().face_match_threshold


def test_person_b_selfie_finds_only_b_photos(world: World) -> None:
    guest = world.guest()
    assert upload_selfie(world, guest, mirrored("biden.jpg", (0.0, 0.0, 1.0, 0.6)))["status"] == "ready"
    assert world.names(world.client.get("/api/my-photos", headers=guest).json()) == B_PHOTOS


def test_person_c_selfie_finds_only_c_photos(world: World) -> None:
    guest = world.guest()
    assert upload_selfie(world, guest, mirrored("Tom_Hanks_54745.png", scale=2.0))["status"] == "ready"
    assert world.names(world.client.get("/api/my-photos", headers=guest).json()) == C_PHOTOS


@pytest.mark.parametrize(
    ("fixture", "code"),
    [("t1.jpg", "multiple_faces"), ("mask_white.jpg", "no_face"), ("mask_blue.jpg", "no_face")],
)
def test_unusable_selfies_are_refused_with_the_reason(world: World, fixture: str, code: str) -> None:
    guest = world.guest()
    state = upload_selfie(world, guest, fixture_bytes(fixture))
    assert state["status"] == "rejected"
    assert state["error"]["code"] == code
    assert state["error"]["message"]
    assert state["matches"] == 0
    # The refused image is not kept.
    from app.core.storage import path_for
    from app.selfies.models import Selfie

    with session_scope() as session:
        key = session.get(Selfie, state["selfie_id"]).image_key
    assert not path_for(key).exists()


def test_a_refused_selfie_keeps_the_previous_one_and_its_matches(world: World) -> None:
    guest = world.guest()
    upload_selfie(world, guest, fixture_bytes("obama.jpg"))
    state = upload_selfie(world, guest, fixture_bytes("mask_blue.jpg"))
    assert state["status"] == "rejected" and state["matches"] == len(A_PHOTOS)
    assert world.names(world.client.get("/api/my-photos", headers=guest).json()) == A_PHOTOS


def test_a_new_selfie_replaces_the_previous_one_and_its_matches(world: World) -> None:
    guest = world.guest()
    upload_selfie(world, guest, fixture_bytes("obama.jpg"))
    first = world.client.get("/api/selfie", headers=guest).json()["selfie_id"]
    upload_selfie(world, guest, mirrored("biden.jpg", (0.0, 0.0, 1.0, 0.6)))
    state = world.client.get("/api/selfie", headers=guest).json()
    assert state["selfie_id"] != first and state["matches"] == len(B_PHOTOS)
    assert world.names(world.client.get("/api/my-photos", headers=guest).json()) == B_PHOTOS


def test_relaxed_validation_takes_the_largest_face(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "selfie_validation_strict", False)
    guest = world.guest()
    # A's face with C's much smaller face in the corner: strict mode would refuse it.
    im = Image.open(FIXTURES / "obama.jpg").convert("RGB")
    im.paste(Image.open(FIXTURES / "Tom_Hanks_54745.png").convert("RGB"), (10, 10))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=92)
    with_two_faces = out.getvalue()
    monkeypatch.setattr(get_settings(), "selfie_validation_strict", True)
    assert upload_selfie(world, world.guest(), with_two_faces)["error"]["code"] == "multiple_faces"
    monkeypatch.setattr(get_settings(), "selfie_validation_strict", False)
    assert upload_selfie(world, guest, with_two_faces)["status"] == "ready"
    assert world.names(world.client.get("/api/my-photos", headers=guest).json()) == A_PHOTOS


def test_photos_indexed_after_sign_up_are_matched_to_the_guest(world: World) -> None:
    second = make_event(world.client, world.org, "Afterparty")
    guest = world.guest(second["code"])
    upload_selfie(world, guest, fixture_bytes("obama.jpg"))
    assert world.client.get("/api/my-photos", headers=guest).json()["photos"] == []
    ids = upload_photos(
        world.client,
        world.org,
        second["id"],
        {"late_a.jpg": fixture_bytes("obama2.jpg"), "late_b.jpg": fixture_bytes("biden.jpg")},
    )
    drain_jobs()
    mine = world.client.get("/api/my-photos", headers=guest).json()["photos"]
    assert [p["id"] for p in mine] == [ids["late_a.jpg"]]


def test_a_guest_joining_another_event_is_matched_there_too(world: World) -> None:
    other = make_event(world.client, world.org, "Brunch")
    ids = upload_photos(world.client, world.org, other["id"], {"brunch_a.jpg": fixture_bytes("obama3.jpg")})
    drain_jobs()
    guest = world.guest()
    upload_selfie(world, guest, fixture_bytes("obama.jpg"))
    r = world.client.post("/api/join-event", json={"code": other["code"]}, headers=guest)
    assert r.json()["joined"] is True
    drain_jobs()
    everything = world.client.get("/api/my-photos", headers=guest).json()["photos"]
    assert world.names({"photos": everything}) == A_PHOTOS | {str(ids["brunch_a.jpg"])}
    only_brunch = world.client.get("/api/my-photos", params={"event_id": other["id"]}, headers=guest).json()
    assert [p["id"] for p in only_brunch["photos"]] == [ids["brunch_a.jpg"]]


def test_guests_see_only_photos_they_are_matched_in(world: World) -> None:
    a_guest = world.guest()
    upload_selfie(world, a_guest, fixture_bytes("obama.jpg"))
    mine = world.client.get("/api/my-photos", headers=a_guest).json()["photos"][0]
    assert world.client.get(mine["thumbnail_url"], headers=a_guest).status_code == 200
    assert world.client.get(mine["url"], headers=a_guest).status_code == 200
    b_photo = world.photos["b.jpg"]
    for kind in ("thumbnail", "original"):
        r = world.client.get(f"/api/photos/{b_photo}/{kind}", headers=a_guest)
        assert r.status_code == 404 and r.json()["error"]["code"] == "photo_not_found"
    assert world.client.get(mine["url"]).status_code == 401
    # The organizer sees every photo of their event.
    assert world.client.get(f"/api/photos/{b_photo}/original", headers=world.org).status_code == 200


def test_my_photos_for_an_event_the_guest_is_not_in_is_404(world: World) -> None:
    guest = world.guest()
    r = world.client.get("/api/my-photos", params={"event_id": 999_999}, headers=guest)
    assert r.status_code == 404


def test_login_still_works_for_the_selfie_guests(world: World) -> None:
    r = world.client.post("/api/login", json={"login": "guest1", "password": PASSWORD})
    assert r.status_code == 200
