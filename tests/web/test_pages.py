"""The pages without a browser: sessions, CSRF, languages, redirects, errors, QR codes and the
docs, through the real app and database (HTTPS test client: the cookies are ``Secure``)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import csrf, login, make_event, page_text, register
from tools.accounts import PASSWORD


def register_form(web: TestClient, code: str, username: str = "alice", **extra: str) -> Any:
    form = {
        "csrf_token": csrf(web),
        "event_code": code,
        "username": username,
        "email": f"{username}@example.com",
        "password": PASSWORD,
        "accept_face_processing": "yes",
        **extra,
    }
    return web.post("/register", data=form, follow_redirects=False)


def test_pages_are_in_french_by_default_and_follow_accept_language(web: TestClient) -> None:
    french = page_text(web.get("/"))
    assert '<html lang="fr">' in french and "Code de l'événement" in french
    english = page_text(web.get("/", headers={"Accept-Language": "en-US,en;q=0.9,fr;q=0.5"}))
    assert '<html lang="en">' in english and ">Event code</label>" in english
    assert '<html lang="fr">' in page_text(web.get("/", headers={"Accept-Language": "de-DE, fr;q=0.8"}))


def test_the_language_switch_is_remembered_and_only_redirects_within_the_site(web: TestClient) -> None:
    r = web.get("/lang/en?next=/login", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert "lang=en" in r.headers["set-cookie"] and "Max-Age=31536000" in r.headers["set-cookie"]
    assert ">Password</label>" in page_text(web.get("/login"))
    for target in ("//evil.example", "https://evil.example", "/\\evil.example"):
        assert web.get(f"/lang/fr?next={target}", follow_redirects=False).headers["location"] == "/"


def test_the_guest_form_labels_read_exactly_as_asked_in_english(
    web: TestClient, event: dict[str, Any]
) -> None:
    page = page_text(web.get(f"/?event={event['code']}", headers={"Accept-Language": "en"}))
    for label in ("Event code", "Username", "Email", "Password"):
        assert f">{label}</label>" in page
    web.get("/lang/en")
    register_form(web, event["code"])
    selfie = page_text(web.get("/selfie"))
    # One large action; no `capture`, so the phone offers its camera or a photo it has.
    assert '<label for="selfie" class="button big">Take my selfie</label>' in selfie
    assert 'type="file" accept="image/*"' in selfie and "capture" not in selfie
    assert "<button" not in selfie.split('id="selfie-form"')[1].split("</form>")[0]


def test_registration_opens_a_lasting_http_only_session(web: TestClient, event: dict[str, Any]) -> None:
    r = register_form(web, event["code"])
    assert r.status_code == 303 and r.headers["location"] == "/selfie"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("session="))
    for attribute in ("HttpOnly", "SameSite=lax", "Secure", "Max-Age=604800"):
        assert attribute in cookie
    assert web.get("/selfie").status_code == 200
    me = web.get("/api/me")  # the API takes the cookie too (a GET needs no CSRF header)
    assert me.status_code == 200 and me.json()["username"] == "alice"


def test_registration_errors_are_shown_in_the_form_with_the_values_kept(
    web: TestClient, event: dict[str, Any]
) -> None:
    register(web, event["code"], "alice")
    r = register_form(web, event["code"], "alice")
    assert r.status_code == 409
    assert "Ce nom d'utilisateur est déjà pris" in page_text(r) and 'value="alice@example.com"' in page_text(
        r
    )
    r = register_form(web, event["code"], "bob", accept_face_processing="")
    assert r.status_code == 422 and "Acceptez le traitement de votre visage" in page_text(r)
    r = register_form(web, "NOPE-2345", "carol")
    assert r.status_code == 404 and "Aucun événement n'a ce code" in page_text(r)


def test_a_form_without_its_csrf_token_is_refused(web: TestClient, event: dict[str, Any]) -> None:
    csrf(web)
    form = {
        "event_code": event["code"],
        "username": "mallory",
        "email": "m@example.com",
        "password": PASSWORD,
    }
    assert web.post("/register", data=form).status_code == 403
    assert web.post("/register", data=form | {"csrf_token": "0" * 64}).status_code == 403
    other = TestClient(web.app, base_url="https://testserver")  # another browser's token
    assert web.post("/register", data=form | {"csrf_token": csrf(other)}).status_code == 403


def test_cookie_sessions_need_the_csrf_header_on_the_api_and_bearer_tokens_do_not(
    web: TestClient, event: dict[str, Any]
) -> None:
    register_form(web, event["code"])
    token = csrf(web, "/selfie")
    assert web.post("/api/logout").status_code == 403
    assert web.post("/api/logout", headers={"X-CSRF-Token": token}).status_code == 204
    assert web.get("/api/me").status_code == 401  # the logout revoked the cookie's token
    bearer = login(web, "alice")
    assert TestClient(web.app).post("/api/logout", headers=bearer).status_code == 204


def test_logging_out_of_the_pages_revokes_the_session_everywhere(
    web: TestClient, event: dict[str, Any]
) -> None:
    register_form(web, event["code"])
    copied = dict(web.cookies)
    r = web.post("/logout", data={"csrf_token": csrf(web, "/account")}, follow_redirects=False)
    assert r.status_code == 303 and 'session=""' in r.headers["set-cookie"]
    thief = TestClient(web.app, base_url="https://testserver", cookies=copied)
    assert thief.get("/photos", follow_redirects=False).headers["location"] == "/login?next=%2Fphotos"


def test_log_in_goes_back_to_the_page_asked_for_but_never_to_another_site(
    web: TestClient, event: dict[str, Any]
) -> None:
    register(web, event["code"], "alice")
    form = {"csrf_token": csrf(web), "login": "alice", "password": PASSWORD}
    r = web.post("/login", data=form | {"next": "/account"}, follow_redirects=False)
    assert r.headers["location"] == "/account"
    web.cookies.clear()
    form["csrf_token"] = csrf(web)
    assert (
        web.post("/login", data=form | {"next": "//evil.example"}, follow_redirects=False).headers["location"]
        == "/photos"
    )
    web.cookies.clear()
    form = {"csrf_token": csrf(web), "login": "alice", "password": "wrong password!"}
    r = web.post("/login", data=form)
    assert r.status_code == 401 and "mot de passe incorrect" in page_text(r)


def test_availability_says_why_as_the_guest_types(web: TestClient, event: dict[str, Any]) -> None:
    register(web, event["code"], "alice")
    assert "Disponible" in page_text(web.get("/availability?username=bob"))
    assert "déjà pris" in page_text(web.get("/availability?username=Alice"))
    assert "3 à 30" in page_text(web.get("/availability?username=a"))
    taken = page_text(web.get("/availability?email=alice@example.com"))
    assert "Cette adresse e-mail est déjà utilisée par un compte" in taken


def test_the_qr_link_with_the_code_opens_the_event(web: TestClient, event: dict[str, Any]) -> None:
    r = web.get(f"/e/{event['code'].lower()}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/?event={event['code']}"
    page = page_text(web.get(r.headers["location"]))
    assert event["name"] in page and f'value="{event["code"]}"' in page


def test_organizer_pages_show_the_qr_code_to_print(
    web: TestClient, organizer: dict[str, Any], org_headers: dict[str, str]
) -> None:
    form = {"csrf_token": csrf(web), "login": organizer["username"], "password": PASSWORD}
    assert web.post("/login", data=form, follow_redirects=False).headers["location"] == "/organizer"
    created = web.post(
        "/organizer/events", data={"csrf_token": csrf(web), "name": "Bal"}, follow_redirects=False
    )
    event_page = web.get(created.headers["location"])
    code = re.search(r'data-code="([A-Z0-9-]+)"', page_text(event_page))
    assert (
        code
        and "<svg" in page_text(event_page)
        and f"https://testserver/e/{code.group(1)}" in page_text(event_page)
    )
    svg = web.get(created.headers["location"] + "/qr.svg")
    png = web.get(created.headers["location"] + "/qr.png")
    assert svg.headers["content-type"] == "image/svg+xml" and svg.content.startswith(b"<?xml")
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_guest_cannot_open_organizer_pages(web: TestClient, event: dict[str, Any]) -> None:
    register_form(web, event["code"])
    r = web.get("/organizer")
    assert (
        r.status_code == 403
        and "Seuls les organisateurs" in page_text(r)
        and r.headers["content-type"].startswith("text/html")
    )
    assert web.get(f"/organizer/events/{event['id']}").status_code == 403


def test_page_errors_are_pages_and_api_errors_stay_json(web: TestClient) -> None:
    r = web.get("/photos/12345", follow_redirects=False)
    assert r.status_code == 303  # signed out: the log-in page first
    r = web.get("/no-such-page")
    assert r.status_code == 404 and "Cette page n'existe pas." in page_text(r)
    assert web.get("/api/no-such-endpoint").json()["error"]["code"] == "not_found"


def test_another_guests_photo_page_is_not_found(web: TestClient, event: dict[str, Any]) -> None:
    register_form(web, event["code"])
    r = web.get("/photos/1")
    assert r.status_code == 404 and "n'existe pas ou ne vous est pas destinée" in page_text(r)


def test_account_deletion_asks_for_the_password(web: TestClient, event: dict[str, Any]) -> None:
    register_form(web, event["code"])
    r = web.post("/account/delete", data={"csrf_token": csrf(web, "/account"), "password": "not it at all"})
    assert r.status_code == 401 and "Le mot de passe est incorrect." in page_text(r)
    r = web.post("/account/delete", data={"csrf_token": csrf(web, "/account"), "password": PASSWORD})
    assert r.status_code == 200 and "Compte supprimé" in page_text(r)
    assert web.get("/api/me").status_code == 401


def test_swagger_ui_is_served_from_local_files(web: TestClient) -> None:
    page = page_text(web.get("/docs"))
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert not re.search(r"https?://(?!testserver)", page.replace("http://www.w3.org", ""))
    assert web.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert web.get("/static/vendor/htmx/htmx.min.js").status_code == 200


def test_an_event_made_through_the_api_is_on_the_organizer_page(
    web: TestClient, organizer: dict[str, Any], org_headers: dict[str, str]
) -> None:
    event = make_event(web, org_headers, "Fête")
    form = {"csrf_token": csrf(web), "login": organizer["username"], "password": PASSWORD}
    web.post("/login", data=form)
    assert "Fête" in page_text(web.get("/organizer")) and event["code"] in page_text(web.get("/organizer"))


def test_every_form_of_the_pages_is_refused_without_its_csrf_token(web: TestClient) -> None:
    from fastapi.routing import APIRoute

    from app.web import guest, organizer

    posts = [
        route.path
        for route in [*guest.router.routes, *organizer.router.routes]
        if isinstance(route, APIRoute) and "POST" in (route.methods or set())
    ]
    assert len(posts) >= 10
    csrf(web)  # the browser has its CSRF cookie, but these posts do not carry the token
    for path in posts:
        assert web.post(re.sub(r"\{[^}]+\}", "1", path), data={"name": "x"}).status_code == 403, path


def test_a_refused_registration_shows_every_error_at_once_and_keeps_what_was_typed(
    web: TestClient, event: dict[str, Any]
) -> None:
    form = {"csrf_token": csrf(web), "event_code": event["code"], "username": "a!", "email": "nope"}
    r = web.post("/register", data=form | {"password": "tiny9"})
    page = page_text(r)
    assert r.status_code == 422
    names = ("username", "email", "password", "accept_face_processing")
    for name in names:  # each error has its id, and its field points at it
        assert f'id="{name}-error"' in page
        assert re.search(rf'aria-invalid="true"[^>]*aria-describedby="{name}-error', page), name
    assert page.count('aria-invalid="true"') == 4 and page.count(" autofocus") == 1
    assert re.search(r'id="username"[^>]*aria-invalid="true" autofocus', page)  # the first in error
    assert "4 champs à corriger ci-dessous." in page and 'role="alert"' not in page
    assert 'value="a!"' in page and 'value="nope"' in page and "tiny9" not in page  # never the password
    assert not re.search(r'id="consent"[^>]*checked', page)
    # A taken username alone: only its error, the focus on it, the consent still ticked.
    assert register_form(web, event["code"], "alice").status_code == 303
    web.cookies.clear()
    form = {
        "csrf_token": csrf(web),
        "event_code": event["code"],
        "username": "alice",
        "email": "new@example.com",
    }
    r = web.post("/register", data=form | {"password": PASSWORD, "accept_face_processing": "yes"})
    page = page_text(r)
    assert r.status_code == 409 and page.count('aria-invalid="true"') == 1
    assert "Ce nom d'utilisateur est déjà pris : choisissez-en un autre." in page
    assert re.search(r'id="username"[^>]*aria-invalid="true" autofocus', page)
    assert re.search(r'id="consent"[^>]*checked', page) and 'value="new@example.com"' in page
    assert PASSWORD not in page
    english = page_text(web.post("/register", data=form, headers={"Accept-Language": "en"}))
    assert "3 fields to correct below." in english  # username taken, no password, no consent


def test_the_password_field_tells_its_length_while_typed(web: TestClient, event: dict[str, Any]) -> None:
    page = page_text(web.get(f"/?event={event['code']}"))
    assert 'aria-describedby="password-hint password-meter"' in page and 'data-meter="password-meter"' in page
    assert 'data-short="{n} caractères : il en faut au moins 8."' in page


def test_deleting_the_selfie_asks_first_and_works_without_a_script(
    web: TestClient, event: dict[str, Any]
) -> None:
    register_form(web, event["code"])
    confirm = page_text(web.get("/account/delete-selfie"))
    assert '<form method="post" action="/account/delete-selfie">' in confirm
    assert "Supprimer votre selfie ?" in confirm and '<a class="button secondary" href="/account">' in confirm


def test_the_account_page_changes_the_password(web: TestClient, event: dict[str, Any]) -> None:
    """As ``POST /api/me/password`` (the same service): the current password again, the new one
    twice and as strong as at registration; the other sessions end, this browser stays in."""
    from main import app

    new = "purple lantern orchestra"
    register_form(web, event["code"])
    assert 'action="/account/password"' in page_text(web.get("/account"))
    old_cookie = web.cookies.get("session")

    def change(current: str, password: str, again: str | None = None) -> Any:
        form = {"current_password": current, "new_password": password, "confirm_password": again or password}
        return web.post(
            "/account/password", data=form | {"csrf_token": csrf(web, "/account")}, follow_redirects=False
        )

    for (current, password, again), status, field_name in [
        (("not it at all", new, None), 401, "current_password"),
        ((PASSWORD, new, "purple lantern"), 422, "confirm_password"),
        ((PASSWORD, "alice123", None), 422, "new_password"),
    ]:
        page = page_text(r := change(current, password, again))
        assert r.status_code == status, field_name
        assert re.search(
            rf'id="{field_name}"[^>]*aria-invalid="true" aria-describedby="{field_name}-error"', page
        )
        assert page.count('aria-invalid="true"') == 1 and 'role="alert"' not in page
    assert "Le nouveau mot de passe et sa confirmation ne correspondent pas." in page_text(
        change(PASSWORD, new, "other words here")
    )
    r = change(PASSWORD, new)
    assert r.status_code == 303 and r.headers["location"] == "/account?done=password_changed#password"
    assert "Votre mot de passe a été modifié." in page_text(web.get(r.headers["location"]))  # still signed in
    with TestClient(app, base_url="https://testserver") as other:
        other.cookies.set("session", str(old_cookie), domain="testserver.local")
        assert other.get("/account", follow_redirects=False).status_code == 303  # signed out
        assert other.post("/api/login", json={"login": "alice", "password": new}).status_code == 200
