"""A guest's selfie finds exactly the event photos they appear in (real photos, real dlib).

One event is built once for the module from the fixtures: person A (Obama) in several
photos, B (Biden) and C (Tom Hanks) as distractors, the six-person group photo, and two
composites (A next to B, C next to the group).
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image, ImageOps

from app.core.config import get_settings
from app.core.database import session_scope
from app.faces.providers import match_settings
from tests.fixtures.events import IndexedEvent
from tests.helpers import drain_jobs, make_event, selfie_verdict, upload_photos
from tools.accounts import PASSWORD
from tools.paths import FACES
from tools.photos import A_PHOTOS, B_PHOTOS, C_PHOTOS, fixture_bytes


def mirrored(name: str, crop: tuple[float, float, float, float] | None = None, scale: float = 1.0) -> bytes:
    """Another picture of the same person: mirrored (cropped, scaled), re-encoded as JPEG."""
    im = ImageOps.exif_transpose(Image.open(FACES / name)).convert("RGB")
    if crop:
        w, h = im.size
        im = im.crop((int(crop[0] * w), int(crop[1] * h), int(crop[2] * w), int(crop[3] * h)))
    if scale != 1.0:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    ImageOps.mirror(im).save(out, "JPEG", quality=92)
    return out.getvalue()


def upload_selfie(
    indexed_event: IndexedEvent, headers: dict[str, str], data: bytes, name: str = "selfie.jpg"
) -> Any:
    return selfie_verdict(indexed_event.client, headers, data, name)


def test_event_photos_are_indexed_with_one_descriptor_per_face(indexed_event: IndexedEvent) -> None:
    r = indexed_event.client.get(f"/api/events/{indexed_event.event['id']}", headers=indexed_event.org)
    body = r.json()
    assert body["photos"] == {"pending": 0, "processing": 0, "indexed": 9, "failed": 0}
    # 1 face in each of the six single-person photos, 6 in the group, 2 + 7 in the composites.
    listed = indexed_event.client.get(
        f"/api/events/{indexed_event.event['id']}/photos", headers=indexed_event.org
    ).json()["photos"]
    faces = {p["filename"]: p["faces"] for p in listed}
    assert body["faces"] == sum(faces.values()) == 6 + 6 + 2 + 7
    assert faces["group.jpg"] == 6 and faces["a_and_b.jpg"] == 2 and faces["c_and_group.jpg"] == 7


def test_person_a_selfie_finds_exactly_a_photos_best_first(indexed_event: IndexedEvent) -> None:
    guest = indexed_event.guest()
    state = upload_selfie(indexed_event, guest, fixture_bytes("obama.jpg"))
    assert state["status"] == "ready" and state["matches"] == len(A_PHOTOS) and state["error"] is None
    mine = indexed_event.client.get("/api/my-photos", headers=guest).json()
    assert indexed_event.names(mine) == A_PHOTOS
    distances = [p["distance"] for p in mine["photos"]]
    assert distances == sorted(distances) and max(distances) <= match_settings(get_settings()).guard


def test_person_b_selfie_finds_only_b_photos(indexed_event: IndexedEvent) -> None:
    guest = indexed_event.guest()
    assert (
        upload_selfie(indexed_event, guest, mirrored("biden.jpg", (0.0, 0.0, 1.0, 0.6)))["status"] == "ready"
    )
    assert indexed_event.names(indexed_event.client.get("/api/my-photos", headers=guest).json()) == B_PHOTOS


def test_person_c_selfie_finds_only_c_photos(indexed_event: IndexedEvent) -> None:
    guest = indexed_event.guest()
    assert (
        upload_selfie(indexed_event, guest, mirrored("Tom_Hanks_54745.png", scale=2.0))["status"] == "ready"
    )
    assert indexed_event.names(indexed_event.client.get("/api/my-photos", headers=guest).json()) == C_PHOTOS


@pytest.mark.parametrize(
    ("fixture", "code"),
    [("t1.jpg", "multiple_faces"), ("mask_white.jpg", "no_face"), ("mask_blue.jpg", "no_face")],
)
def test_unusable_selfies_are_refused_with_the_reason(
    indexed_event: IndexedEvent, fixture: str, code: str
) -> None:
    guest = indexed_event.guest()
    state = upload_selfie(indexed_event, guest, fixture_bytes(fixture))
    assert state["status"] == "rejected"
    assert state["error"]["code"] == code
    assert state["error"]["message"]
    assert state["matches"] == 0
    # The refused image is not kept.
    from app.selfies.models import Selfie
    from tests.helpers import local_file

    with session_scope() as session:
        key = session.get_one(Selfie, state["selfie_id"]).image_key
    assert not local_file(key).exists()


def test_a_refused_selfie_keeps_the_previous_one_and_its_matches(indexed_event: IndexedEvent) -> None:
    guest = indexed_event.guest()
    upload_selfie(indexed_event, guest, fixture_bytes("obama.jpg"))
    state = upload_selfie(indexed_event, guest, fixture_bytes("mask_blue.jpg"))
    assert state["status"] == "rejected" and state["matches"] == len(A_PHOTOS)
    assert indexed_event.names(indexed_event.client.get("/api/my-photos", headers=guest).json()) == A_PHOTOS


def test_a_new_selfie_replaces_the_previous_one_and_its_matches(indexed_event: IndexedEvent) -> None:
    guest = indexed_event.guest()
    upload_selfie(indexed_event, guest, fixture_bytes("obama.jpg"))
    first = indexed_event.client.get("/api/selfie", headers=guest).json()["selfie_id"]
    upload_selfie(indexed_event, guest, mirrored("biden.jpg", (0.0, 0.0, 1.0, 0.6)))
    state = indexed_event.client.get("/api/selfie", headers=guest).json()
    assert state["selfie_id"] != first and state["matches"] == len(B_PHOTOS)
    assert indexed_event.names(indexed_event.client.get("/api/my-photos", headers=guest).json()) == B_PHOTOS


def test_relaxed_validation_takes_the_largest_face(
    indexed_event: IndexedEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "selfie_validation_strict", False)
    guest = indexed_event.guest()
    # A's face with C's much smaller face in the corner: strict mode would refuse it.
    im = Image.open(FACES / "obama.jpg").convert("RGB")
    im.paste(Image.open(FACES / "Tom_Hanks_54745.png").convert("RGB"), (10, 10))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=92)
    with_two_faces = out.getvalue()
    monkeypatch.setattr(get_settings(), "selfie_validation_strict", True)
    assert (
        upload_selfie(indexed_event, indexed_event.guest(), with_two_faces)["error"]["code"]
        == "multiple_faces"
    )
    monkeypatch.setattr(get_settings(), "selfie_validation_strict", False)
    assert upload_selfie(indexed_event, guest, with_two_faces)["status"] == "ready"
    assert indexed_event.names(indexed_event.client.get("/api/my-photos", headers=guest).json()) == A_PHOTOS


def test_photos_indexed_after_sign_up_are_matched_to_the_guest(indexed_event: IndexedEvent) -> None:
    second = make_event(indexed_event.client, indexed_event.org, "Afterparty")
    guest = indexed_event.guest(second["code"])
    upload_selfie(indexed_event, guest, fixture_bytes("obama.jpg"))
    assert indexed_event.client.get("/api/my-photos", headers=guest).json()["photos"] == []
    ids = upload_photos(
        indexed_event.client,
        indexed_event.org,
        second["id"],
        {"late_a.jpg": fixture_bytes("obama2.jpg"), "late_b.jpg": fixture_bytes("biden.jpg")},
    )
    drain_jobs()
    mine = indexed_event.client.get("/api/my-photos", headers=guest).json()["photos"]
    assert [p["id"] for p in mine] == [ids["late_a.jpg"]]


def test_a_guest_joining_another_event_is_matched_there_too(indexed_event: IndexedEvent) -> None:
    other = make_event(indexed_event.client, indexed_event.org, "Brunch")
    ids = upload_photos(
        indexed_event.client, indexed_event.org, other["id"], {"brunch_a.jpg": fixture_bytes("obama3.jpg")}
    )
    drain_jobs()
    guest = indexed_event.guest()
    upload_selfie(indexed_event, guest, fixture_bytes("obama.jpg"))
    r = indexed_event.client.post("/api/join-event", json={"code": other["code"]}, headers=guest)
    assert r.json()["joined"] is True
    drain_jobs()
    everything = indexed_event.client.get("/api/my-photos", headers=guest).json()["photos"]
    assert indexed_event.names({"photos": everything}) == A_PHOTOS | {str(ids["brunch_a.jpg"])}
    only_brunch = indexed_event.client.get(
        "/api/my-photos", params={"event_id": other["id"]}, headers=guest
    ).json()
    assert [p["id"] for p in only_brunch["photos"]] == [ids["brunch_a.jpg"]]


def test_guests_see_only_photos_they_are_matched_in(indexed_event: IndexedEvent) -> None:
    a_guest = indexed_event.guest()
    upload_selfie(indexed_event, a_guest, fixture_bytes("obama.jpg"))
    mine = indexed_event.client.get("/api/my-photos", headers=a_guest).json()["photos"][0]
    assert indexed_event.client.get(mine["thumbnail_url"], headers=a_guest).status_code == 200
    assert indexed_event.client.get(mine["url"], headers=a_guest).status_code == 200
    b_photo = indexed_event.photos["b.jpg"]
    for kind in ("thumbnail", "original"):
        r = indexed_event.client.get(f"/api/photos/{b_photo}/{kind}", headers=a_guest)
        assert r.status_code == 404 and r.json()["error"]["code"] == "photo_not_found"
    assert indexed_event.client.get(mine["url"]).status_code == 401
    # The organizer sees every photo of their event.
    assert (
        indexed_event.client.get(f"/api/photos/{b_photo}/original", headers=indexed_event.org).status_code
        == 200
    )


def test_my_photos_for_an_event_the_guest_is_not_in_is_404(indexed_event: IndexedEvent) -> None:
    guest = indexed_event.guest()
    r = indexed_event.client.get("/api/my-photos", params={"event_id": 999_999}, headers=guest)
    assert r.status_code == 404


def test_login_still_works_for_the_selfie_guests(indexed_event: IndexedEvent) -> None:
    r = indexed_event.client.post("/api/login", json={"login": "guest1", "password": PASSWORD})
    assert r.status_code == 200


def test_the_dashboard_counts_guests_and_ready_selfies_as_its_guest_list_shows_them(
    indexed_event: IndexedEvent,
) -> None:
    from app.selfies.guests import event_guests, guest_counts

    event = make_event(indexed_event.client, indexed_event.org, "Counts")
    ready, refused, replaced, _without = (indexed_event.guest(event["code"]) for _ in range(4))
    upload_selfie(indexed_event, ready, fixture_bytes("obama.jpg"))
    upload_selfie(indexed_event, refused, fixture_bytes("mask_blue.jpg"))
    upload_selfie(indexed_event, replaced, fixture_bytes("biden.jpg"))
    upload_selfie(indexed_event, replaced, fixture_bytes("mask_blue.jpg"))
    with session_scope() as session:
        listed = event_guests(session=session, event_id=event["id"])
        counts = guest_counts(session=session, event_id=event["id"])
    assert counts == (len(listed), sum(g.selfie_status == "ready" for g in listed))
    assert counts[0] == 4 and counts[1] >= 1
