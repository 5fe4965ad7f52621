"""A guest's photos page on real matches (the nine indexed photos of ``indexed_event``): the
grid, the badge of what is new since the last visit (per guest and per event), one photo full
size (previous / next, download, share), "not me" there and its undo, and deleting the selfie."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from PIL import ImageDraw
from sqlalchemy import select

from app.accounts.models import User
from app.core.database import session_scope
from app.events.models import EventMembership
from tests.fixtures.events import IndexedEvent
from tests.helpers import csrf, drain_jobs, make_event
from tools.accounts import PASSWORD
from tools.photos import A_PHOTOS, fixture_bytes, fixture_image, jpeg

_guests = iter(range(1, 1000))


@pytest.fixture
def guest(indexed_event: IndexedEvent) -> Iterator[TestClient]:
    """A guest of the event, signed in on the pages, whose selfie (person A) is matched."""
    from main import app

    number = next(_guests)
    with TestClient(app, base_url="https://testserver") as web:
        form = {
            "csrf_token": csrf(web),
            "event_code": indexed_event.event["code"],
            "username": f"pageguest{number}",
            "email": f"pageguest{number}@example.com",
            "password": PASSWORD,
            "accept_face_processing": "yes",
        }
        assert web.post("/register", data=form, follow_redirects=False).status_code == 303
        files = {"file": ("selfie.jpg", fixture_bytes("obama.jpg"), "image/jpeg")}
        token = csrf(web, "/selfie")
        assert web.post("/api/upload-selfie", files=files, headers={"X-CSRF-Token": token}).status_code == 202
        drain_jobs()
        yield web


def _tiles(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<li id="photo-(\d+)">', page)]


def _seen_yesterday(username: str) -> None:
    """As if the guest's last visit of their photos page was a day ago (before their matches)."""
    with session_scope() as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        for membership in session.scalars(select(EventMembership).where(EventMembership.user_id == user_id)):
            membership.photos_seen_at = datetime.now(UTC) - timedelta(days=1)


def _username(guest: TestClient) -> str:
    return str(re.findall(r"pageguest\d+", guest.get("/account").text)[0])


def test_the_grid_shows_the_guests_photos_and_new_ones_since_the_last_visit(
    indexed_event: IndexedEvent, guest: TestClient
) -> None:
    first = guest.get("/photos").text
    assert sorted(indexed_event.by_id[i] for i in _tiles(first)) == sorted(A_PHOTOS)
    assert "data-new=" not in first  # a first visit: nothing is "new"
    assert "nouvelle" not in guest.get("/photos").text  # seen now
    _seen_yesterday(_username(guest))
    again = html.unescape(guest.get("/photos").text)
    assert f'data-new="{len(A_PHOTOS)}"' in again
    assert f"{len(A_PHOTOS)} nouvelles photos depuis votre dernière visite" in again
    # The grid refreshed during this visit still shows what was new when it began...
    assert f'data-new="{len(A_PHOTOS)}"' in guest.get("/photos/grid").text
    # ...and the next visit shows nothing new.
    assert "data-new=" not in guest.get("/photos").text


def _visits(username: str) -> dict[int, datetime | None]:
    """The guest's last visit of their photos page, per event."""
    with session_scope() as session:
        rows = session.execute(
            select(EventMembership.event_id, EventMembership.photos_seen_at)
            .join(User, User.id == EventMembership.user_id)
            .where(User.username == username)
        ).all()
    return {event_id: seen for event_id, seen in rows}


def test_what_is_seen_is_the_guests_not_the_browsers(indexed_event: IndexedEvent, guest: TestClient) -> None:
    """The visits are kept per guest (not in a cookie): a second phone of the same guest does
    not see as new what the first one showed; and per event: one event's page marks only it."""
    from main import app

    username = _username(guest)
    _seen_yesterday(username)
    with TestClient(app, base_url="https://testserver") as other_phone:
        form = {"csrf_token": csrf(other_phone), "login": username, "password": PASSWORD}
        assert other_phone.post("/login", data=form, follow_redirects=False).status_code == 303
        event_id = indexed_event.event["id"]
        assert f'data-new="{len(A_PHOTOS)}"' in other_phone.get(f"/photos?event={event_id}").text
    assert "data-new=" not in guest.get("/photos").text  # seen on the other phone
    # Joining a second event: visiting its page leaves the first event's visits alone.
    second = make_event(indexed_event.client, indexed_event.org, "Brunch")
    assert guest.post(
        "/join", data={"csrf_token": csrf(guest, "/photos"), "event_code": second["code"]}
    ).is_success
    seen = _visits(username)
    guest.get(f"/photos?event={second['id']}")
    after = _visits(username)
    assert after[event_id] == seen[event_id] and after[second["id"]] is not None


def test_the_full_size_view_steps_through_the_grid_in_its_order(
    indexed_event: IndexedEvent, guest: TestClient
) -> None:
    grid = guest.get("/photos").text
    tiles = _tiles(grid)
    assert "not-me" not in grid  # "not me" is on the full-size view only
    first, middle, last = (html.unescape(guest.get(f"/photos/{tiles[i]}").text) for i in (0, 1, -1))
    assert 'rel="prev"' not in first and f'rel="next" href="/photos/{tiles[1]}"' in first
    assert (
        f'rel="prev" href="/photos/{tiles[0]}"' in middle
        and f'rel="next" href="/photos/{tiles[2]}"' in middle
    )
    assert f'rel="prev" href="/photos/{tiles[-2]}"' in last and 'rel="next"' not in last
    assert "</span> Précédente</a>" in middle and ">Suivante <span" in middle
    # The download works without a script; the share button shows only where files can be shared.
    assert f'id="download" href="/api/photos/{tiles[1]}/original" download="photo-{tiles[1]}.jpg"' in middle
    assert '<button type="button" id="share" hidden' in middle and ">Partager</button>" in middle
    english = html.unescape(guest.get(f"/photos/{tiles[1]}", headers={"Accept-Language": "en"}).text)
    assert "</span> Previous</a>" in english and ">Next <span" in english and ">Share</button>" in english


def test_not_me_on_the_full_size_view_can_be_undone(indexed_event: IndexedEvent, guest: TestClient) -> None:
    tiles = _tiles(guest.get("/photos").text)
    photo = tiles[1]
    form = {"csrf_token": csrf(guest, f"/photos/{photo}"), "then": f"/photos/{tiles[2]}"}
    r = guest.post(f"/photos/{photo}/not-me", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/photos/{tiles[2]}?removed={photo}"
    shown = html.unescape(guest.get(r.headers["location"]).text)
    assert (
        "Photo retirée." in shown
        and f'action="/photos/{photo}/not-me/undo"' in shown
        and ">Annuler</button>" in shown
    )
    assert photo not in _tiles(guest.get("/photos").text)
    assert guest.get(f"/photos/{photo}").status_code == 404
    for target in ("https://evil.example/x", "//evil.example"):  # only a page of this site
        form = {"csrf_token": csrf(guest, "/photos"), "then": target}
        r = guest.post(f"/photos/{tiles[2]}/not-me", data=form, follow_redirects=False)
        assert r.headers["location"] == f"/photos?removed={tiles[2]}"
    # Undo: the same service as DELETE /api/my-photos/{id}/not-me; the photo comes back once
    # the guest's matches are computed again.
    for undone in (photo, tiles[2]):
        r = guest.post(
            f"/photos/{undone}/not-me/undo",
            data={"csrf_token": csrf(guest, "/photos")},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/photos?restored=1"
    assert "La photo revient dans votre liste dans un instant." in html.unescape(
        guest.get("/photos?restored=1").text
    )
    drain_jobs()
    assert sorted(_tiles(guest.get("/photos").text)) == sorted(tiles)


def test_a_selfie_without_matches_says_so_and_download_all_waits_for_photos(
    indexed_event: IndexedEvent, guest: TestClient
) -> None:
    assert 'id="download-all"' in guest.get("/photos").text
    second = make_event(indexed_event.client, indexed_event.org, "Empty")
    from main import app

    with TestClient(app, base_url="https://testserver") as web:
        form = {
            "csrf_token": csrf(web),
            "event_code": second["code"],
            "username": "nophotos",
            "email": "nophotos@example.com",
            "password": PASSWORD,
            "accept_face_processing": "yes",
        }
        assert web.post("/register", data=form, follow_redirects=False).status_code == 303
        assert 'id="download-all"' not in web.get("/photos").text
        files = {"file": ("selfie.jpg", fixture_bytes("obama.jpg"), "image/jpeg")}
        assert (
            web.post(
                "/api/upload-selfie", files=files, headers={"X-CSRF-Token": csrf(web, "/selfie")}
            ).status_code
            == 202
        )
        drain_jobs()
        status = html.unescape(web.get("/selfie/status").text)
        assert 'data-status="ready"' in status and "Selfie validé, vos photos apparaîtront ici." in status
        assert "0 photo" not in status
        assert (
            "Selfie OK, your photos will appear here."
            in web.get("/selfie/status", headers={"Accept-Language": "en"}).text
        )
        assert 'id="download-all"' not in web.get("/photos").text


def test_deleting_the_selfie_from_the_account_page_empties_the_grid(guest: TestClient) -> None:
    r = guest.post(
        "/account/delete-selfie", data={"csrf_token": csrf(guest, "/account")}, follow_redirects=False
    )
    assert r.headers["location"] == "/account?done=selfie_deleted"
    assert "Votre selfie est supprimé, ainsi que la liste des photos où vous apparaissez." in html.unescape(
        guest.get(r.headers["location"]).text
    )
    page = html.unescape(guest.get("/photos").text)
    assert _tiles(page) == [] and "Prenez d'abord un selfie" in page
    assert 'id="download-all"' not in page


def test_a_selfie_behind_sunglasses_is_refused_and_the_page_names_them(guest: TestClient) -> None:
    """The engine reads the eyes and the lower face on the landmarks (dark glasses, a mask):
    ``face_hidden``, which the page words as a mask or sunglasses."""
    from app.core.config import get_settings
    from app.faces.engine import build_engine

    settings = get_settings()
    engine = build_engine(detector=settings.face_detector, recognizer=settings.face_recognizer)
    img = fixture_image("obama.jpg").convert("RGB")
    (face,) = engine.detector.detect_quick(img)
    assert face.landmarks is not None
    draw, r = ImageDraw.Draw(img), face.box.width * 0.13
    for x, y in face.landmarks[:2]:
        draw.ellipse((x - r, y - r * 0.75, x + r, y + r * 0.75), fill=(15, 15, 20))
    files = {"file": ("selfie.jpg", jpeg(img), "image/jpeg")}
    assert guest.post(
        "/api/upload-selfie", files=files, headers={"X-CSRF-Token": csrf(guest, "/selfie")}
    ).is_success
    drain_jobs()
    status = html.unescape(guest.get("/selfie/status").text)
    assert 'data-status="rejected"' in status
    assert "Votre visage semble caché (masque ou lunettes de soleil ?)" in status
    english = guest.get("/selfie/status", headers={"Accept-Language": "en"}).text
    assert "Your face seems hidden (mask or sunglasses?): take a selfie with your face uncovered" in english
