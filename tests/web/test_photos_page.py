"""A guest's photos page on real matches (the nine indexed photos of ``indexed_event``): the
grid, the badge of what is new since the last visit, "not me", and deleting the selfie."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.events import IndexedEvent
from tests.helpers import drain_jobs
from tests.web.test_pages import csrf
from tools.accounts import PASSWORD
from tools.photos import A_PHOTOS, fixture_bytes

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


def test_the_grid_shows_the_guests_photos_and_new_ones_since_the_last_visit(
    indexed_event: IndexedEvent, guest: TestClient
) -> None:
    first = guest.get("/photos").text
    assert sorted(indexed_event.by_id[i] for i in _tiles(first)) == sorted(A_PHOTOS)
    assert "data-new=" not in first  # a first visit: nothing is "new"
    assert "nouvelle" not in guest.get("/photos").text  # seen now
    guest.cookies.set("seen", (datetime.now(UTC) - timedelta(days=1)).isoformat(), domain="testserver.local")
    again = html.unescape(guest.get("/photos").text)
    assert f'data-new="{len(A_PHOTOS)}"' in again
    assert f"{len(A_PHOTOS)} nouvelles photos depuis votre dernière visite" in again


def test_not_me_from_the_grid_takes_the_photo_out(indexed_event: IndexedEvent, guest: TestClient) -> None:
    photo = _tiles(guest.get("/photos").text)[0]
    r = guest.post(
        f"/photos/{photo}/not-me", data={"csrf_token": csrf(guest, "/photos")}, headers={"HX-Request": "true"}
    )
    assert r.status_code == 200 and r.text == ""  # htmx removes the tile
    assert photo not in _tiles(guest.get("/photos").text)
    assert guest.get(f"/photos/{photo}").status_code == 404


def test_deleting_the_selfie_from_the_account_page_empties_the_grid(guest: TestClient) -> None:
    r = guest.post(
        "/account/delete-selfie", data={"csrf_token": csrf(guest, "/account")}, follow_redirects=False
    )
    assert r.headers["location"] == "/account?done=selfie_deleted"
    assert "Votre selfie et vos correspondances sont supprimés." in html.unescape(
        guest.get(r.headers["location"]).text
    )
    page = html.unescape(guest.get("/photos").text)
    assert _tiles(page) == [] and "Prenez d'abord un selfie" in page
