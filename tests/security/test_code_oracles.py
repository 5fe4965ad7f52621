"""Event codes: every answer that tells whether a code exists goes through the throttled
check (the registration form too), a closed or unknown event's name is never shown, a right
code or join link always gets in, and another site's page cannot fill a venue's limit."""

from __future__ import annotations

import html
import re
import secrets
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import get_settings
from app.events.service import CODE_ALPHABET, CODE_SUFFIX_LENGTH
from tests.helpers import make_event, register

CSRF = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')
# What a browser sends for an <img> (or a frame) that another site's page points at us.
FOREIGN_IMAGE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
FOREIGN_FRAME = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}
# A visitor following a link from another site (an email): a navigation of their own.
FOREIGN_LINK = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}


def _browser(address: str = "192.0.2.10") -> TestClient:
    from main import app

    return TestClient(app, base_url="https://testserver", client=(address, 50000))


def _wrong_code() -> str:
    return "PARTY-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_SUFFIX_LENGTH))


def _register_form(web: TestClient, code: str, password: str = "") -> Any:
    """The registration form as a browser posts it, by default with the password left empty
    (it fails validation)."""
    token = CSRF.search(web.get("/").text)
    assert token
    form = {
        "csrf_token": token.group(1),
        "event_code": code,
        "username": "probe",
        "email": "probe@example.com",
        "password": password,
        "accept_face_processing": "yes",
    }
    return web.post("/register", data=form, follow_redirects=False)


def test_the_registration_form_checks_codes_through_the_throttle(
    event: dict[str, Any], throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_code_failures_per_address", "3/minute")
    with _browser() as web:
        statuses = [_register_form(web, _wrong_code()).status_code for _ in range(5)]
        assert statuses == [404, 404, 404, 429, 429]
        # A right code still gets its form back, with the event's name (and the real error).
        right = _register_form(web, event["code"])
        assert right.status_code == 422 and event["name"] in html.unescape(right.text)


def test_a_closed_events_name_is_never_shown_on_a_failed_registration_form(
    client: TestClient, org_headers: dict[str, str], throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_code_failures_per_address", "2/minute")
    closed = make_event(client, org_headers, "Secret Gala")
    assert client.post(f"/api/events/{closed['id']}/close", headers=org_headers).status_code == 200
    with _browser() as web:
        pages = [_register_form(web, closed["code"]) for _ in range(3)]
        assert [p.status_code for p in pages] == [410, 410, 429]  # counted as wrong guesses
        assert not any("Secret Gala" in html.unescape(p.text) for p in pages)
        for password in ("", "a strong enough passphrase 93"):
            assert "Secret Gala" not in html.unescape(_register_form(web, _wrong_code(), password).text)


def test_a_right_code_and_the_join_link_always_pass_an_address_past_its_limit(
    client: TestClient,
    org_headers: dict[str, str],
    event: dict[str, Any],
    throttle_storage: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_code_failures_per_address", "5/minute")
    join_path = client.get(f"/api/events/{event['id']}", headers=org_headers).json()["join_path"]
    with _browser("198.51.100.1") as venue:
        wrong = [venue.post("/api/check-event-code", json={"code": _wrong_code()}) for _ in range(7)]
        assert [r.status_code for r in wrong] == [404] * 5 + [429] * 2
        assert 0 < int(wrong[-1].headers["Retry-After"]) <= 60
        # Every guest behind the venue's address, with the right code or the QR code, gets in.
        assert venue.post("/api/check-event-code", json={"code": event["code"]}).status_code == 200
        assert venue.get(join_path, follow_redirects=False).status_code == 303
        assert venue.get(f"/e/{event['code']}", follow_redirects=False).status_code == 303
        assert event["name"] in html.unescape(venue.get(f"/?event={event['code']}").text)
        assert register(venue, event["code"], "latecomer").status_code == 201


@pytest.mark.parametrize("foreign", [FOREIGN_IMAGE, FOREIGN_FRAME], ids=["img", "iframe"])
def test_another_sites_page_cannot_lock_a_venue_out_with_join_links(
    event: dict[str, Any], throttle_storage: str, monkeypatch: pytest.MonkeyPatch, foreign: dict[str, str]
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_code_failures_per_address", "60/10 minutes")
    with _browser("203.0.113.5") as guest_browser:
        # A page with 100 <img src="https://ours/e/WRONG"> (or frames), seen at the venue.
        for _ in range(100):
            r = guest_browser.get(f"/e/{_wrong_code()}", headers=foreign, follow_redirects=False)
            assert r.status_code == 404
            assert guest_browser.get(f"/?event={_wrong_code()}", headers=foreign).status_code == 404
        # None of it counted: a guest's own typo is a plain 404, the right code passes.
        assert guest_browser.post("/api/check-event-code", json={"code": _wrong_code()}).status_code == 404
        assert guest_browser.get(f"/e/{event['code']}", follow_redirects=False).status_code == 303


def test_a_link_a_visitor_follows_from_another_site_counts_as_their_own(
    throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_code_failures_per_address", "3/minute")
    with _browser("203.0.113.6") as visitor:
        statuses = [
            visitor.get(f"/e/{_wrong_code()}", headers=FOREIGN_LINK, follow_redirects=False).status_code
            for _ in range(4)
        ]
        assert statuses == [404, 404, 404, 429]
        # A scanner that sends no Fetch Metadata is counted too.
        assert visitor.post("/api/check-event-code", json={"code": _wrong_code()}).status_code == 429
