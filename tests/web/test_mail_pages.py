"""The pages of mail without a browser, through the real app, database and face jobs: the
mailed links (reset, sign-in by link or code, verification) act on POST only and say clearly
when they no longer work; the forgotten-password page says the same for every address; the
one-click unsubscribe needs no cookie; the account's address and switches; the organizer's
notifications. Mail goes to ``DATA_DIR/mail`` (no ``SMTP_URL``) and is read from there."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from app.core.config import get_settings
from tests.helpers import csrf, drain_jobs, login, make_event, register, selfie_verdict, upload_photos
from tests.helpers import page_text as text
from tests.web.test_pages import register_form
from tools.accounts import PASSWORD
from tools.mailbox import link_with, text_body
from tools.photos import fixture_bytes

NEW_PASSWORD = "otter lantern quietly marches"
DEAD = "Ce lien ne fonctionne plus"
Inbox = Callable[[str], list[EmailMessage]]


def _browser() -> TestClient:
    from main import app

    return TestClient(app, base_url="https://testserver")


@pytest.fixture
def web(client: TestClient) -> Iterator[TestClient]:
    with _browser() as c:
        yield c


@pytest.fixture
def inbox() -> Inbox:
    """The messages sent to an address since the test began, oldest first (the mail jobs run
    first)."""
    folder = get_settings().mail_dir
    before = set(folder.glob("*.eml")) if folder.exists() else set()

    def sent_to(address: str) -> list[EmailMessage]:
        drain_jobs()
        files = sorted(set(folder.glob("*.eml")) - before, key=lambda p: p.stat().st_mtime_ns)
        messages = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]
        return [m for m in messages if isinstance(m, EmailMessage) and address in str(m["To"])]

    return sent_to


def _path(message: EmailMessage, fragment: str) -> str:
    return urlsplit(link_with(message, fragment)).path


def _post(web: TestClient, path: str, form: dict[str, str] | None = None, page: str | None = None) -> Any:
    """A form of ``page`` (``path`` itself unless told) posted with its CSRF token."""
    data = {"csrf_token": csrf(web, page or path), **(form or {})}
    return web.post(path, data=data, follow_redirects=False)


def _switch(page: str, switch_id: str) -> str:
    """Whether the account page's switch ``switch_id`` is on or off."""
    found = re.search(rf'<input id="{switch_id}"[^>]*role="switch"( checked)?>', page)
    assert found, switch_id
    return "on" if found.group(1) else "off"


def _guest(web: TestClient, event: dict[str, Any], name: str = "ada") -> None:
    """A guest registered on the pages: ``web`` is signed in as them (their verification mail
    is sent now: mails of different kinds go in their kinds' order)."""
    assert register_form(web, event["code"], name).status_code == 303
    drain_jobs()


def test_a_forgotten_password_is_reset_from_the_mailed_link_which_get_does_not_spend(
    web: TestClient, event: dict[str, Any], inbox: Inbox
) -> None:
    _guest(web, event)
    web.cookies.clear()
    assert 'href="/forgot-password"' in web.get("/login").text
    sent = _post(web, "/forgot-password", {"email": "ADA@example.com"})
    assert sent.status_code == 200 and "un message vient d'y être envoyé" in text(sent)
    path = _path(inbox("ada@example.com")[-1], "/reset-password/")
    assert web.get(path).status_code == web.get(path).status_code == 200  # a mail scanner's visits
    weak = _post(web, path, {"password": "password1"})
    assert weak.status_code == 422 and 'role="alert"' in weak.text and 'id="new-password"' in weak.text
    done = _post(web, path, {"password": NEW_PASSWORD})
    assert (done.status_code, done.headers["location"]) == (303, "/photos")
    assert "ada" in text(web.get("/account"))  # signed in
    again = _post(web, path, {"password": NEW_PASSWORD + " again"})
    assert again.status_code == 400 and DEAD in text(again) and 'href="/forgot-password"' in again.text
    assert "session a expiré" not in text(again)
    assert web.post("/api/login", json={"login": "ada", "password": NEW_PASSWORD}).status_code == 200


def test_the_forgot_page_answers_the_same_for_an_unknown_or_invalid_address_and_mails_nothing(
    web: TestClient, event: dict[str, Any], inbox: Inbox
) -> None:
    _guest(web, event)
    web.cookies.clear()
    before = len(inbox("@example.com"))
    addresses = ("ada@example.com", "nobody@example.com", "oops")
    pages = [_post(web, "/forgot-password", {"email": address}) for address in addresses]
    assert {p.status_code for p in pages} == {200}
    assert len({re.sub(r'name="csrf[-_]token"[^>]*>', "", p.text) for p in pages}) == 1
    assert len(inbox("@example.com")) == before + 1


def test_too_many_reset_requests_show_the_reason_on_the_form(
    web: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_mail_requests_per_address", "2/10 minutes")
    for _ in range(2):
        assert _post(web, "/forgot-password", {"email": "x@example.com"}).status_code == 200
    refused = _post(web, "/forgot-password", {"email": "x@example.com"})
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "Trop de tentatives" in text(refused) and 'value="x@example.com"' in refused.text


def test_dead_or_unknown_links_give_a_clear_page_with_the_way_to_a_new_one(
    web: TestClient, event: dict[str, Any]
) -> None:
    ways = {"/reset-password/nope": "/forgot-password", "/login/email/nope": "/login#email-signin"}
    for path, way in ways.items():
        page = _post(web, path, {"password": NEW_PASSWORD})
        assert page.status_code == 400 and DEAD in text(page) and f'href="{way}"' in page.text, path
    signed_out = _post(web, "/verify-email/nope")
    assert signed_out.status_code == 400 and 'href="/login?next=%2Faccount"' in signed_out.text
    _guest(web, event)
    signed_in = _post(web, "/verify-email/nope")
    assert signed_in.status_code == 400 and 'action="/account/verification"' in signed_in.text
    assert "session a expiré" not in text(signed_in)


def test_a_guest_signs_in_once_with_the_mailed_link_in_a_browser_without_cookies(
    web: TestClient, event: dict[str, Any], inbox: Inbox
) -> None:
    _guest(web, event)
    web.cookies.clear()
    asked = _post(web, "/login/email", {"email": "ada@example.com"}, page="/login")
    assert asked.status_code == 200 and 'id="code"' in asked.text
    path = _path(inbox("ada@example.com")[-1], "/login/email/")
    with _browser() as phone:
        assert phone.get(path).status_code == phone.get(path).status_code == 200
        done = _post(phone, path)
        assert (done.status_code, done.headers["location"]) == (303, "/photos")
        assert phone.get("/api/me").json()["email_verified"] is True
        again = _post(phone, path)
        assert again.status_code == 400 and DEAD in text(again)


def test_the_notifications_link_leads_through_the_sign_in_link_back_to_the_event_s_photos(
    web: TestClient, event: dict[str, Any], inbox: Inbox
) -> None:
    _guest(web, event)
    web.cookies.clear()
    wanted = f"/photos?event={event['id']}"
    to_login = web.get(wanted, follow_redirects=False)
    assert to_login.headers["location"] == f"/login?next=%2Fphotos%3Fevent%3D{event['id']}"
    assert f'name="next" value="{wanted}"' in text(web.get(to_login.headers["location"]))
    _post(web, "/login/email", {"email": "ada@example.com", "next": wanted}, page="/login")
    done = _post(web, _path(inbox("ada@example.com")[-1], "/login/email/"))
    assert done.headers["location"] == wanted


def test_a_guest_signs_in_with_the_mailed_code_after_a_wrong_one(
    web: TestClient, event: dict[str, Any], inbox: Inbox
) -> None:
    _guest(web, event)
    web.cookies.clear()
    wanted = f"/photos?event={event['id']}"
    _post(web, "/login/email", {"email": "ada@example.com", "next": wanted}, page="/login")
    found = re.search(r"\b(\d{4} \d{4})\b", text_body(inbox("ada@example.com")[-1]))
    assert found
    code = found.group(1)
    wrong = "00000000" if code.replace(" ", "") != "00000000" else "11111111"
    refused = _post(web, "/login/code", {"email": "ada@example.com", "code": wrong, "next": wanted})
    assert refused.status_code == 400 and "Ce code est erroné" in text(refused)
    done = _post(web, "/login/code", {"email": "ada@example.com", "code": code, "next": wanted})
    assert (done.status_code, done.headers["location"]) == (303, wanted)


def test_the_verification_link_confirms_the_address_on_post_only(
    web: TestClient, event: dict[str, Any], inbox: Inbox
) -> None:
    _guest(web, event)
    assert "pas encore vérifiée" in text(web.get("/account"))
    path = _path(inbox("ada@example.com")[-1], "/verify-email/")
    assert web.get(path).status_code == 200
    assert web.get("/api/me").json()["email_verified"] is False
    done = _post(web, path)
    assert done.status_code == 200 and "ada@example.com est confirmée" in text(done)
    assert 'href="/photos"' in done.text
    assert web.get("/api/me").json()["email_verified"] is True
    assert "Votre adresse est vérifiée." in text(web.get("/account"))


def test_one_click_unsubscribe_needs_no_cookie_nor_csrf_and_turns_the_switch_off_at_once(
    web: TestClient, event: dict[str, Any]
) -> None:
    from app.notices.service import unsubscribe_url

    _guest(web, event)
    me = web.get("/api/me").json()
    path = urlsplit(unsubscribe_url(me["id"], event["id"], get_settings())).path
    with _browser() as provider:
        asked = provider.get(path)
        assert asked.status_code == 200 and event["name"] in text(asked)
        assert web.get("/api/me/notifications").json()["events"][0]["enabled"] is True  # GET changes nothing
        done = provider.post(path, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200
        assert f"plus de message sur les nouvelles photos de {event['name']}" in text(done)
        assert provider.post(path + "x", data={"List-Unsubscribe": "One-Click"}).status_code == 404
        assert provider.get("/unsubscribe/1-1.forged").status_code == 404
    assert web.get("/api/me/notifications").json()["events"][0]["enabled"] is False
    assert _switch(web.get("/account").text, f"notify-{event['id']}") == "off"


def test_the_account_page_saves_the_switches_and_mails_a_new_verification_link(
    web: TestClient, event: dict[str, Any], inbox: Inbox
) -> None:
    _guest(web, event)
    first = len(inbox("ada@example.com"))
    assert _switch(web.get("/account").text, f"notify-{event['id']}") == "on"
    all_off = _post(web, "/account/notifications", {"shown": str(event["id"])}, page="/account")
    assert all_off.status_code == 303
    switches = web.get("/api/me/notifications").json()
    assert switches["enabled"] is False and switches["events"][0]["enabled"] is False
    form = {"enabled": "on", "shown": str(event["id"]), "notify": str(event["id"])}
    saved = _post(web, "/account/notifications", form, page="/account")
    assert saved.headers["location"] == "/account?done=notifications_saved#notifications"
    switches = web.get("/api/me/notifications").json()
    assert switches["enabled"] is True and switches["events"][0]["enabled"] is True
    assert "Vos choix sont enregistrés" in text(web.get(saved.headers["location"]))
    sent = _post(web, "/account/verification", page="/account")
    assert sent.headers["location"] == "/account?done=verification_sent#notifications"
    assert len(inbox("ada@example.com")) == first + 1
    assert web.post("/account/notifications", data={"enabled": "on"}).status_code == 403  # no CSRF token


def test_the_address_changes_with_the_password_and_must_be_verified_again(
    web: TestClient, event: dict[str, Any], inbox: Inbox
) -> None:
    _guest(web, event)
    wrong = _post(web, "/account/email", {"email": "ada2@example.com", "password": "nope"}, page="/account")
    assert wrong.status_code == 401 and 'role="alert"' in wrong.text
    assert 'value="ada2@example.com"' in wrong.text  # the form keeps what was typed
    done = _post(web, "/account/email", {"email": "ada2@example.com", "password": PASSWORD}, page="/account")
    assert done.headers["location"] == "/account?done=email_changed#notifications"
    me = web.get("/api/me").json()
    assert (me["email"], me["email_verified"]) == ("ada2@example.com", False)
    assert _path(inbox("ada2@example.com")[-1], "/verify-email/")


def test_an_organizer_notifies_the_guests_now_and_the_mail_opens_that_event_s_photos(
    web: TestClient, client: TestClient, organizer: dict[str, Any], inbox: Inbox
) -> None:
    org = login(client, organizer["username"])
    event = make_event(client, org, "Garden Party")
    other = make_event(client, org, "Other Party")
    guest = register(client, event["code"], "ada")
    headers = {"Authorization": f"Bearer {guest.json()['access_token']}"}
    token = _path(inbox("ada@example.com")[-1], "/verify-email/").rsplit("/", 1)[1]
    assert client.post("/api/email/verify", json={"token": token}).status_code == 200
    assert selfie_verdict(client, headers, fixture_bytes("obama.jpg"))["status"] == "ready"
    upload_photos(client, org, event["id"], {"a.jpg": fixture_bytes("obama2.jpg")})
    drain_jobs()  # the photo matches: ada's message waits for the quiet period
    form = {"login": organizer["username"], "password": PASSWORD}
    _post(web, "/login", form)
    page = text(web.get(f"/organizer/events/{event['id']}"))
    assert 'data-guests-waiting="1"' in page and "Prévenir les invités maintenant" in page
    done = _post(web, f"/organizer/events/{event['id']}/notify", page=f"/organizer/events/{event['id']}")
    assert done.headers["location"] == f"/organizer/events/{event['id']}?done=notified"
    (mail,) = [m for m in inbox("ada@example.com") if "List-Unsubscribe" in m]
    page = text(web.get(f"/organizer/events/{event['id']}"))
    assert 'data-sent="1"' in page and "<td>ada</td>" in page and 'data-guests-waiting="0"' in page
    again = _post(web, f"/organizer/events/{event['id']}/notify", page=f"/organizer/events/{event['id']}")
    assert again.headers["location"].endswith("?done=nobody_waiting")

    link = urlsplit(link_with(mail, "/photos?event="))
    assert f"{link.path}?{link.query}" == f"/photos?event={event['id']}"
    web.cookies.clear()
    signed_in = _post(web, "/login", {"login": "ada", "password": PASSWORD, "next": f"/photos?{link.query}"})
    assert signed_in.headers["location"] == f"/photos?event={event['id']}"
    photos = web.get(signed_in.headers["location"]).text
    assert len(re.findall(r'<li id="photo-\d+">', photos)) == 1 and "Garden Party" in photos
    assert f"event={event['id']}" in photos  # the live grid keeps to the event
    assert '<li id="photo-' not in web.get(f"/photos?event={other['id']}").text


def test_every_form_of_the_mail_pages_but_the_one_click_unsubscribe_needs_its_csrf_token(
    web: TestClient,
) -> None:
    from fastapi.routing import APIRoute

    from app.web import links

    posts = [
        route.path
        for route in links.router.routes
        if isinstance(route, APIRoute) and "POST" in (route.methods or set())
    ]
    assert len(posts) >= 8
    csrf(web)
    for path in posts:
        answer = web.post(re.sub(r"\{[^}]+\}", "1", path), data={"email": "x@example.com"}).status_code
        assert answer == (404 if path.startswith("/unsubscribe/") else 403), path
