"""Joining a second event from the pages, the erasure date shown to guests and organizers,
and the language switch that keeps the page and its query: without a browser, through the
real app and database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from app.core.database import utcnow
from tests.helpers import csrf, login, make_event, upload_photos
from tests.helpers import page_text as text
from tests.web.test_pages import register_form
from tools.accounts import PASSWORD
from tools.photos import fixture_bytes


def _join(web: TestClient, code: str, language: str = "fr") -> Any:
    form = {"csrf_token": csrf(web), "event_code": code}
    return web.post("/join", data=form, headers={"Accept-Language": language}, follow_redirects=False)


def _my_event_ids(web: TestClient) -> list[int]:
    return [e["id"] for e in web.get("/api/me").json()["events"]]


def test_a_signed_in_guest_joins_another_event_with_one_tap(
    web: TestClient, event: dict[str, Any], org_headers: dict[str, str]
) -> None:
    second = make_event(web, org_headers, "Second Party")
    assert register_form(web, event["code"]).status_code == 303
    # The QR code's link of the second event: its page, with "Join" instead of the registration form.
    page = web.get(f"/e/{second['code'].lower()}", headers={"Accept-Language": "en"})
    assert page.url.path == "/" and page.url.query == f"event={second['code']}".encode()
    body = text(page)
    assert "<h1>Second Party</h1>" in body and 'action="/register"' not in body
    assert 'action="/join"' in body and ">Join</button>" in body
    french = web.get(f"/?event={second['code']}", headers={"Accept-Language": "fr"})
    assert ">Rejoindre</button>" in text(french)
    # The CSRF token is required.
    assert web.post("/join", data={"event_code": second["code"]}, follow_redirects=False).status_code == 403
    r = _join(web, second["code"])
    assert r.status_code == 303 and r.headers["location"] == f"/photos?event={second['id']}"
    assert _my_event_ids(web) == [event["id"], second["id"]]
    assert "Second Party" in text(web.get(r.headers["location"]))
    # A guest of the event goes straight to its photos, from its page, its link, or "Join" again.
    for path in (f"/?event={second['code']}", f"/e/{second['code']}"):
        assert web.get(path).url.path == "/photos"
    assert _join(web, second["code"]).headers["location"] == f"/photos?event={second['id']}"
    assert _my_event_ids(web) == [event["id"], second["id"]]


def test_a_closed_event_and_a_barred_guest_are_told_why_on_the_page(
    web: TestClient, event: dict[str, Any], org_headers: dict[str, str]
) -> None:
    closed, barring = make_event(web, org_headers, "Closed"), make_event(web, org_headers, "Barring")
    assert register_form(web, event["code"]).status_code == 303
    me = web.get("/api/me").json()["id"]
    assert _join(web, barring["code"]).status_code == 303
    removed = web.delete(f"/api/events/{barring['id']}/guests/{me}?bar=true", headers=org_headers)
    assert removed.status_code == 204
    r = _join(web, barring["code"], "en")
    refused = text(r).replace("\N{RIGHT SINGLE QUOTATION MARK}", "'")
    assert r.status_code == 403 and "removed you from this event" in refused
    assert "<h1>Barring</h1>" in text(r)
    assert web.post(f"/api/events/{closed['id']}/close", headers=org_headers).status_code == 200
    page = web.get(f"/?event={closed['code']}", headers={"Accept-Language": "en"})
    assert page.status_code == 410 and "closed to new guests" in text(page)
    assert _join(web, closed["code"]).status_code == 410
    assert _my_event_ids(web) == [event["id"]]
    # A guest of an event that closed since still reaches its photos.
    assert web.post(f"/api/events/{event['id']}/close", headers=org_headers).status_code == 200
    assert web.get(f"/?event={event['code']}").url.path == "/photos"


def test_logging_in_from_an_events_page_joins_it(
    web: TestClient, event: dict[str, Any], org_headers: dict[str, str]
) -> None:
    second = make_event(web, org_headers, "Second")
    assert register_form(web, event["code"]).status_code == 303
    web.post("/logout", data={"csrf_token": csrf(web, "/account")})
    page = text(web.get(f"/?event={second['code']}"))
    assert 'action="/register"' in page and f'href="/login?event={second["code"]}"' in page
    login_page = text(web.get(f"/login?event={second['code']}"))
    assert f'name="event_code" value="{second["code"]}"' in login_page
    form = {"csrf_token": csrf(web), "login": "alice", "password": PASSWORD, "event_code": second["code"]}
    r = web.post("/login", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/photos?event={second['id']}"
    assert _my_event_ids(web) == [event["id"], second["id"]]
    # An event that refuses them: signed in all the same, on its page, which says why.
    web.post("/logout", data={"csrf_token": csrf(web, "/account")})
    assert web.post(f"/api/events/{event['id']}/close", headers=org_headers).status_code == 200
    third = make_event(web, org_headers, "Third")
    assert web.post(f"/api/events/{third['id']}/close", headers=org_headers).status_code == 200
    form |= {"csrf_token": csrf(web), "event_code": third["code"]}
    r = web.post("/login", data=form, follow_redirects=False)
    assert r.headers["location"] == f"/?event={third['code']}"
    assert web.get("/api/me").status_code == 200 and _my_event_ids(web) == [event["id"], second["id"]]


def test_the_registration_page_names_the_organizer_and_the_erasure_date(
    web: TestClient, organizer: dict[str, Any], org_headers: dict[str, str]
) -> None:
    ends = utcnow() - timedelta(days=1)
    body = {"name": "Dated", "ends_at": ends.isoformat(), "retention_days": 30}
    dated = web.post("/api/events", json=body, headers=org_headers).json()
    undated = make_event(web, org_headers, "Undated")
    day = ends + timedelta(days=30)
    english = text(web.get(f"/?event={dated['code']}", headers={"Accept-Language": "en"}))
    assert f"Organized by {organizer['username']}." in english
    assert f"Photos of Dated are erased on {day:%B} {day.day}, {day.year}." in english
    french = text(web.get(f"/?event={undated['code']}", headers={"Accept-Language": "fr"}))
    assert f"Organisé par {organizer['username']}." in french
    assert "Les photos de Undated sont effacées 30 jours après l'ajout de la dernière." in french


def test_the_erasure_date_is_shown_to_the_organizer_and_the_guests(
    web: TestClient, organizer: dict[str, Any], org_headers: dict[str, str], event: dict[str, Any]
) -> None:
    assert register_form(web, event["code"]).status_code == 303
    photos = text(web.get("/photos", headers={"Accept-Language": "en"}))
    assert "Photos of Summer Party are erased 30 days after the last one is added." in photos
    upload_photos(web, org_headers, event["id"], {"a.jpg": fixture_bytes("obama2.jpg")})
    day = utcnow() + timedelta(days=30)
    photos = text(web.get(f"/photos?event={event['id']}", headers={"Accept-Language": "fr"}))
    assert "Les photos de Summer Party sont effacées le " in photos and str(day.year) in photos
    web.post("/logout", data={"csrf_token": csrf(web, "/account")})
    form = {"csrf_token": csrf(web), "login": organizer["username"], "password": PASSWORD}
    assert web.post("/login", data=form, follow_redirects=False).status_code == 303
    dashboard = text(web.get(f"/organizer/events/{event['id']}", headers={"Accept-Language": "en"}))
    expected = f"erased on {day:%B} {day.day}, {day.year}, 30 days after the last upload."
    assert expected in dashboard
    assert login(web, organizer["username"])  # the API agrees
    assert (
        web.get(f"/api/events/{event['id']}", headers=org_headers)
        .json()["purge_at"]
        .startswith(f"{day:%Y-%m-%d}")
    )


def test_the_language_switch_keeps_the_page_and_its_query(web: TestClient, event: dict[str, Any]) -> None:
    page = text(web.get(f"/?event={event['code']}", headers={"Accept-Language": "fr"}))
    assert f'href="/lang/en?next=/%3Fevent%3D{event["code"]}"' in page
    r = web.get(f"/lang/en?next=%2F%3Fevent%3D{event['code']}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/?event={event['code']}"
    english = text(web.get(r.headers["location"]))
    assert f'value="{event["code"]}"' in english and ">Event code</label>" in english
    for target in ("/%09/evil.example", "//evil.example", "/\\evil.example", "https://evil.example"):
        assert web.get(f"/lang/fr?next={target}", follow_redirects=False).headers["location"] == "/"
