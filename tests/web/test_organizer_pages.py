"""The organizer's pages without a browser: the dashboard's paginated grid of thumbnails, the
deletion of the photos ticked once confirmed, the progress poll that sends only what changed,
the card to print, and the events with their photo and guest counts (HTTPS test client: the
cookies are ``Secure``)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.core.database import get_engine
from app.photos.models import Photo, PhotoStatus
from tests.helpers import (
    bearer,
    csrf,
    drain_jobs,
    login,
    make_event,
    make_organizer,
    page_text,
    register,
    upload_photos,
)
from tools.accounts import PASSWORD
from tools.photos import fixture_bytes

CURSOR = re.compile(r'<input type="hidden" name="(page|after|open|total)" value="([^"]*)">')


def sign_in(web: TestClient, username: str) -> None:
    form = {"csrf_token": csrf(web), "login": username, "password": PASSWORD}
    assert web.post("/login", data=form, follow_redirects=False).headers["location"] == "/organizer"


def add_photos(session: Session, event_id: int, n: int, status: str = PhotoStatus.pending) -> list[int]:
    """``n`` photo rows straight in the table (the grid needs no file to list them)."""
    photos = [
        Photo(
            event_id=event_id,
            filename=f"IMG_{i:04d}.jpg",
            original_key=f"photos/{event_id}/missing-{i}.jpg",
            original_format="jpeg",
            size_bytes=1000,
            width=4,
            height=3,
            status=status,
        )
        for i in range(n)
    ]
    session.add_all(photos)
    session.commit()
    return [p.id for p in photos]


@pytest.fixture
def dashboard(web: TestClient, organizer: dict[str, Any], event: dict[str, Any]) -> str:
    """The event's dashboard path, its organizer signed in."""
    sign_in(web, organizer["username"])
    return f"/organizer/events/{event['id']}"


def test_the_dashboard_pages_the_photos_as_a_grid_with_counts(
    web: TestClient, session: Session, dashboard: str, event: dict[str, Any]
) -> None:
    add_photos(session, event["id"], 130)
    page = page_text(web.get(dashboard))
    assert "Photos 1\u201360 sur 130" in page
    assert page.count('<li id="org-photo-') == 60 and "IMG_0000.jpg" in page and "IMG_0060.jpg" not in page
    assert f'href="{dashboard}?page=2#photos"' in page and f'href="{dashboard}?page=3#photos"' in page
    assert '<strong aria-current="page">1</strong>' in page
    last = page_text(web.get(f"{dashboard}?page=3"))
    assert "Photos 121\u2013130 sur 130" in last and last.count('<li id="org-photo-') == 10
    assert "IMG_0129.jpg" in last and 'rel="prev"' in last and 'rel="next"' not in last
    assert "Photos 121\u2013130 sur 130" in page_text(web.get(f"{dashboard}?page=99"))  # the last page
    # Each photo has its checkbox, labelled by the file's name; waiting ones say so.
    assert re.search(
        r'<label class="pick"><input type="checkbox" name="photo" value="\d+"><span>IMG_0000.jpg', page
    )
    assert "en attente" in page
    # htmx follows a page link with the grid alone; a browser without script gets the page.
    fragment = web.get(f"{dashboard}/photos?page=2", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<section id="photos"')
    assert "Photos 61\u2013120 sur 130" in page_text(fragment) and "<html" not in fragment.text
    plain = web.get(f"{dashboard}/photos?page=2", follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == f"{dashboard}?page=2#photos"


def test_an_indexed_photo_shows_its_thumbnail_to_its_organizer_only(
    web: TestClient,
    client: TestClient,
    session: Session,
    dashboard: str,
    event: dict[str, Any],
    org_headers: dict[str, str],
) -> None:
    ids = upload_photos(client, org_headers, event["id"], {"party.jpg": fixture_bytes("obama2.jpg")})
    drain_jobs()
    photo_id = ids["party.jpg"]
    page = page_text(web.get(dashboard))
    assert f'<img src="/api/photos/{photo_id}/thumbnail" alt="Ouvrir party.jpg"' in page
    thumbnail = web.get(f"/api/photos/{photo_id}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    other = login(client, make_organizer(session)["username"])
    assert client.get(f"/api/photos/{photo_id}/thumbnail", headers=other).status_code == 404


def test_photos_ticked_are_deleted_once_confirmed_and_the_page_says_how_many(
    web: TestClient, client: TestClient, session: Session, dashboard: str, event: dict[str, Any]
) -> None:
    ids = add_photos(session, event["id"], 65)
    others = make_event(client, login(client, make_organizer(session)["username"]), "Other")
    foreign = add_photos(session, others["id"], 1)
    chosen = [ids[0], ids[1], ids[62], foreign[0]]  # another organizer's photo is never touched
    confirm = web.get(f"{dashboard}/photos/delete", params={"photo": chosen, "page": 2})
    page = page_text(confirm)
    assert confirm.status_code == 200 and "Supprimer 3 photos ?" in page
    assert "IMG_0000.jpg" in page and "IMG_0062.jpg" in page and "IMG_0002.jpg" not in page
    assert f'value="{ids[0]},{ids[1]},{ids[62]}"' in page
    assert "Photos 1\u201360 sur 65" in page_text(
        web.get(dashboard)
    )  # nothing deleted before the confirmation

    form = {"csrf_token": csrf(web, dashboard), "photo": f"{ids[0]},{ids[1]},{ids[62]},{foreign[0]}"}
    done = web.post(f"{dashboard}/photos/delete?page=2", data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith(f"{dashboard}?page=2&")
    after = page_text(web.get(done.headers["location"]))
    assert "3 photos supprimées." in after and "Enregistré." not in after
    assert "Photos 61\u201362 sur 62" in after
    session.expire_all()
    assert session.get(Photo, foreign[0]) is not None and session.get(Photo, ids[0]) is None
    # In English, and one photo.
    web.get("/lang/en")
    form = {"csrf_token": csrf(web, dashboard), "photo": str(ids[2])}
    one = web.post(f"{dashboard}/photos/delete", data=form)
    assert "1 photo deleted." in page_text(one) and "Saved." not in page_text(one)
    # Nothing ticked: said so, nothing asked.
    nothing = web.get(f"{dashboard}/photos/delete?page=1")
    assert "Tick the photos to delete first." in page_text(nothing)


def _cursor(page: str) -> dict[str, str]:
    block = re.search(r'<div id="photo-cursor"[^>]*>(.*?)</div>', page, re.S)
    assert block
    return dict(CURSOR.findall(block.group(1)))


def test_the_progress_poll_sends_only_what_changed(
    web: TestClient, session: Session, dashboard: str, event: dict[str, Any]
) -> None:
    ids = add_photos(session, event["id"], 170)
    page = web.get(dashboard).text
    cursor = _cursor(page)
    assert cursor["page"] == "1" and cursor["total"] == "170" and cursor["after"] == str(ids[59])
    assert cursor["open"] == ",".join(map(str, ids[:60]))

    quiet = web.get(f"{dashboard}/progress", params=cursor)
    assert quiet.status_code == 200 and len(quiet.content) < 2048, len(quiet.content)
    assert 'id="progress"' in quiet.text and "org-photo-" not in quiet.text and "photos-nav" not in quiet.text
    assert 'data-pending="170"' in quiet.text and "every 2s" in quiet.text

    # One photo of the page is indexed: only it comes, out of band, with the new cursor.
    session.execute(
        update(Photo)
        .where(Photo.id == ids[3])
        .values(status=PhotoStatus.indexed, faces_count=2, thumbnail_key="t.jpg")
    )
    session.commit()
    changed = web.get(f"{dashboard}/progress", params=_cursor(quiet.text))
    assert (
        f'<div id="org-photo-{ids[3]}-view" class="thumb" data-status="indexed" hx-swap-oob="true">'
        in changed.text
    )
    assert f"/api/photos/{ids[3]}/thumbnail" in changed.text and "2 visages" in page_text(changed)
    assert changed.text.count("org-photo-") == 1 and len(changed.content) < 4096
    assert str(ids[3]) not in _cursor(changed.text)["open"].split(",")
    again = web.get(f"{dashboard}/progress", params=_cursor(changed.text))
    assert "org-photo-" not in again.text and len(again.content) < 2048

    # On the last page, a new photo is appended to the grid and the count follows.
    last = _cursor(web.get(f"{dashboard}?page=3").text)
    [new] = add_photos(session, event["id"], 1)
    grown = web.get(f"{dashboard}/progress", params=last)
    assert 'hx-swap-oob="beforeend:#photo-grid"' in grown.text and f'<li id="org-photo-{new}">' in grown.text
    assert 'id="photos-nav" class="photos-nav" hx-swap-oob="true"' in grown.text
    assert "Photos 121\u2013171 sur 171" in page_text(grown) and _cursor(grown.text)["after"] == str(new)


def test_the_card_to_print_has_the_code_the_qr_code_and_how_to_join(
    web: TestClient, dashboard: str, event: dict[str, Any]
) -> None:
    assert f'href="{dashboard}/card"' in web.get(dashboard).text
    card = page_text(web.get(f"{dashboard}/card"))
    assert f'<h1 id="card-title">{event["name"]}</h1>' in card
    assert f'data-code="{event["code"]}"' in card and f'src="{dashboard}/qr.svg"' in card
    how = "Scannez le code QR, ou rendez-vous sur https://testserver et saisissez le code de l'événement."
    assert how in card
    assert 'class="card-page"' in card
    css = web.get("/static/app.css").text
    assert "@media print" in css and "@page" in css


def test_the_events_list_counts_photos_and_guests_in_a_fixed_number_of_queries(
    web: TestClient,
    client: TestClient,
    session: Session,
    organizer: dict[str, Any],
    org_headers: dict[str, str],
) -> None:
    sign_in(web, organizer["username"])
    first = make_event(client, org_headers, "Gala")
    add_photos(session, first["id"], 3)
    register(client, first["code"], "ann")

    def queries() -> int:
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(str(args[2]))

        sa_event.listen(get_engine(), "before_cursor_execute", count)
        try:
            assert web.get("/organizer").status_code == 200
        finally:
            sa_event.remove(get_engine(), "before_cursor_execute", count)
        return len(seen)

    one = queries()
    for name in ("Bal", "Fête", "Concert"):
        other = make_event(client, org_headers, name)
        add_photos(session, other["id"], 2)
        bearer(register(client, other["code"], f"guest-{len(name)}-{other['id']}"))
    assert queries() == one
    page = page_text(web.get("/organizer"))
    gala = re.search(rf'<li data-event="{first["id"]}">(.*?)</li>', page, re.S)
    assert gala and "3 photos" in gala.group(1) and "1 invité" in gala.group(1)
    assert page.count("2 photos") == 3 and page.count("1 invité") == 4


def test_each_action_of_the_dashboard_says_what_it_did(
    web: TestClient, client: TestClient, dashboard: str, event: dict[str, Any]
) -> None:
    ann, bob = (
        client.get("/api/me", headers=bearer(register(client, event["code"], name))).json()["id"]
        for name in ("ann", "bob")
    )

    def act(path: str, **data: str) -> str:
        form = {"csrf_token": csrf(web, dashboard), **data}
        return page_text(web.post(f"{dashboard}/{path}", data=form))

    said = {
        "close": "Inscriptions fermées : les invités gardent leurs photos.",
        "open": "Les inscriptions sont rouvertes.",
        "retention": "Durée de conservation enregistrée.",
        f"guests/{ann}/remove": "Invité retiré.",
        f"guests/{bob}/remove?bar": "Invité retiré et exclu de l'événement.",
        f"bans/{bob}/lift": "Exclusion levée : l'invité peut de nouveau rejoindre l'événement.",
    }
    for path, message in said.items():
        data = {"retention_days": "30"} if path == "retention" else {"bar": "1"} if "?" in path else {}
        page = act(path.removesuffix("?bar"), **data)
        assert message in page and "Enregistré" not in page, path
