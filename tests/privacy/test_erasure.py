"""A guest's and an organizer's erasures really erase: after each one, no row of that person
or photo is left in any table and no file of theirs under DATA_DIR, and nobody else loses
anything (real photos, real dlib, the real database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.models import User
from app.core.config import get_settings
from app.selfies.models import Selfie
from tests.fixtures.events import IndexedEvent, Party
from tests.privacy.erasure import media_files, rows_naming
from tools.accounts import PASSWORD
from tools.photos import fixture_bytes


@pytest.fixture
def before_party(monkeypatch: pytest.MonkeyPatch) -> None:
    # Selfie images kept, so that their erasure is seen.
    monkeypatch.setattr(get_settings(), "selfie_keep_image", True)


def _selfie_files(session: Session, user_id: int) -> list[Path]:
    keys = session.scalars(select(Selfie.image_key).where(Selfie.user_id == user_id)).all()
    return [get_settings().media_dir / key for key in keys]


def test_not_me_takes_a_photo_out_of_one_guests_list_for_good(party: Party) -> None:
    c, shared = party.client, party.photos["ab.jpg"]
    assert c.post(f"/api/my-photos/{shared}/not-me", headers=party.a).status_code == 204
    assert party.my_photos(party.a) == {"a.jpg"}
    assert party.my_photos(party.b) == {"ab.jpg"}  # the other guest keeps it
    assert c.get(f"/api/photos/{shared}/original", headers=party.a).status_code == 404
    # Never matched again, even with a new selfie.
    assert party.selfie(party.a, fixture_bytes("obama3.jpg"))["status"] == "ready"
    assert party.my_photos(party.a) == {"a.jpg"}
    # Undone: matched again.
    assert c.delete(f"/api/my-photos/{shared}/not-me", headers=party.a).status_code == 204
    from tests.helpers import drain_jobs

    drain_jobs()
    assert party.my_photos(party.a) == {"a.jpg", "ab.jpg"}
    assert c.post("/api/my-photos/999999/not-me", headers=party.a).status_code == 404


def test_deleting_the_selfie_erases_its_image_its_template_and_every_match(
    party: Party, session: Session
) -> None:
    c = party.client
    user_id = party.user_id(party.a)
    before = media_files()
    files = _selfie_files(session, user_id)
    assert files and all(f.exists() for f in files)
    assert c.delete("/api/selfie", headers=party.a).status_code == 204
    assert session.scalars(select(Selfie).where(Selfie.user_id == user_id)).all() == []
    # The deletion is one of the day's selfie changes, shown to the organizer (no face in it).
    # The account keeps its verification link and its mail (they name no face).
    assert rows_naming(("user", user_id)) == {
        "users.id": 1,
        "event_memberships.user_id": 1,
        "selfie_changes.user_id": 1,
        "account_tokens.user_id": 1,
        "outbox.user_id": 1,
    }
    assert not any(f.exists() for f in files)
    assert media_files() <= before
    assert c.get("/api/selfie", headers=party.a).status_code == 404
    assert party.my_photos(party.a) == set() and party.my_photos(party.b) == {"ab.jpg"}
    party.upload({"late.jpg": fixture_bytes("obama2.jpg")}, index=True)
    assert party.my_photos(party.a) == set()  # nothing matched until a new selfie
    assert c.delete("/api/selfie", headers=party.a).status_code == 404


def test_deleting_the_account_erases_everything_of_it_and_its_tokens(party: Party, session: Session) -> None:
    c = party.client
    user_id = party.user_id(party.a)
    files = _selfie_files(session, user_id)
    assert files and all(f.exists() for f in files)
    wrong = c.request("DELETE", "/api/me", json={"password": "not my password"}, headers=party.a)
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "wrong_password")
    assert c.request("DELETE", "/api/me", json={"password": PASSWORD}, headers=party.a).status_code == 204
    assert c.get("/api/me", headers=party.a).status_code == 401
    assert rows_naming(("user", user_id)) == {}
    assert not any(f.exists() for f in files)
    assert party.my_photos(party.b) == {"ab.jpg"}
    assert c.post("/api/login", json={"login": "guest1", "password": PASSWORD}).status_code == 401


def test_an_organizer_erases_a_photo_its_faces_matches_and_files(party: Party, session: Session) -> None:
    c, shared = party.client, party.photos["ab.jpg"]
    c.post(f"/api/my-photos/{shared}/not-me", headers=party.b)  # a "not me" answer goes too
    files_before = media_files()
    r = c.delete(f"/api/events/{party.event['id']}/photos/{shared}", headers=party.org)
    assert r.status_code == 204
    assert rows_naming(("photo", shared)) == {}
    gone = files_before - media_files()
    assert len(gone) == 3 and all(str(shared) in f or f.startswith("photos/") for f in gone)
    assert party.my_photos(party.a) == {"a.jpg"} and party.my_photos(party.b) == set()
    assert c.delete(f"/api/events/{party.event['id']}/photos/{shared}", headers=party.org).status_code == 404
    assert (
        c.delete(
            f"/api/events/{party.event['id']}/photos/{party.photos['a.jpg']}", headers=party.a
        ).status_code
        == 403
    )


def test_an_organizer_removes_a_guest_and_their_matches_in_the_event(party: Party, session: Session) -> None:
    c = party.client
    user_id = party.user_id(party.b)
    assert c.delete(f"/api/events/{party.event['id']}/guests/{user_id}", headers=party.org).status_code == 204
    assert rows_naming(("user", user_id)).keys() == {
        "users.id",
        "selfies.user_id",
        "account_tokens.user_id",
        "outbox.user_id",
    }
    assert party.my_photos(party.b) == set() and party.my_photos(party.a) == {"a.jpg", "ab.jpg"}
    assert c.delete(f"/api/events/{party.event['id']}/guests/{user_id}", headers=party.org).status_code == 404


def test_the_selfie_image_is_deleted_once_its_template_is_stored_unless_kept(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    party = IndexedEvent(client)
    guest = party.guest()
    assert party.selfie(guest, fixture_bytes("obama.jpg"))["status"] == "ready"
    selfie = session.scalars(select(Selfie)).one()
    assert not (get_settings().media_dir / selfie.image_key).exists()
    monkeypatch.setattr(get_settings(), "selfie_keep_image", True)
    assert party.selfie(guest, fixture_bytes("obama3.jpg"))["status"] == "ready"
    session.expire_all()
    selfie = session.scalars(select(Selfie)).one()
    assert Path(get_settings().media_dir / selfie.image_key).exists()


def test_registration_records_consent_to_the_published_policy(
    client: TestClient, event: dict[str, Any], session: Session
) -> None:
    from tests.helpers import register

    policy = client.get("/api/privacy", headers={"Accept-Language": "en"}).json()
    assert policy["version"] and "template" in policy["text"] and "how long" in policy["text"].lower()
    refused = register(client, event["code"], "nadia", accept_face_processing=False)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "consent_required")
    assert register(client, event["code"], "nadia").status_code == 201
    user = session.scalars(select(User).where(User.username == "nadia")).one()
    assert user.consent_at is not None and user.consent_version == policy["version"]
