"""Smaller findings on accounts and guests: a removed guest can be barred from rejoining
(and let back in), zip exports are limited per guest and one at a time, a photos filter
outside the id range is refused (no 500), look-alike emails are refused, a password built on
the event's name is refused whatever its spacing, and an organizer without events may delete
their account."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.api.me import EXPORT_SLOT
from app.core.config import get_settings
from tests.helpers import bearer, drain_jobs, login, make_event, make_organizer, register
from tools.accounts import PASSWORD

CSRF = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


def _web() -> TestClient:
    from main import app

    return TestClient(app, base_url="https://testserver")


def _csrf(web: TestClient, path: str) -> str:
    found = CSRF.search(web.get(path).text)
    assert found
    return found.group(1)


def _me(client: TestClient, headers: dict[str, str]) -> int:
    return int(client.get("/api/me", headers=headers).json()["id"])


def _join(client: TestClient, headers: dict[str, str], code: str) -> Any:
    return client.post("/api/join-event", json={"code": code}, headers=headers)


def test_a_guest_removed_with_bar_cannot_rejoin_until_the_organizer_lifts_it(
    client: TestClient, session: Session, org_headers: dict[str, str], event: dict[str, Any]
) -> None:
    guest = bearer(register(client, event["code"], "gatecrasher"))
    uid, guests = _me(client, guest), f"/api/events/{event['id']}/guests"
    # Removed without ``bar``: back at once with the code (unchanged).
    assert client.delete(f"{guests}/{uid}", headers=org_headers).status_code == 204
    assert _join(client, guest, event["code"]).json()["joined"] is True
    # Removed with ``?bar=true``: refused until the organizer says otherwise.
    assert client.delete(f"{guests}/{uid}", params={"bar": "true"}, headers=org_headers).status_code == 204
    refused = _join(client, guest, event["code"])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "guest_barred"
    bans = client.get(f"/api/events/{event['id']}/bans", headers=org_headers).json()["bans"]
    assert [(b["user_id"], b["username"]) for b in bans] == [(uid, "gatecrasher")]
    # Only the event's organizer sees or lifts its bans; other guests are not affected.
    other = login(client, make_organizer(session)["username"])
    assert client.get(f"/api/events/{event['id']}/bans", headers=other).status_code == 404
    assert client.delete(f"/api/events/{event['id']}/bans/{uid}", headers=other).status_code == 404
    assert register(client, event["code"], "friend").status_code == 201
    # Lifted: the guest may join again.
    assert client.delete(f"/api/events/{event['id']}/bans/{uid}", headers=org_headers).status_code == 204
    assert _join(client, guest, event["code"]).json()["joined"] is True
    again = client.delete(f"/api/events/{event['id']}/bans/{uid}", headers=org_headers)
    assert again.status_code == 404 and again.json()["error"]["code"] == "ban_not_found"


def test_the_dashboard_removes_and_bars_a_guest_and_lets_them_back_in(
    client: TestClient, organizer: dict[str, Any], org_headers: dict[str, str], event: dict[str, Any]
) -> None:
    guest = bearer(register(client, event["code"], "gatecrasher"))
    uid, dashboard = _me(client, guest), f"/organizer/events/{event['id']}"
    with _web() as web:
        form = {"csrf_token": _csrf(web, "/login"), "login": organizer["username"], "password": PASSWORD}
        assert web.post("/login", data=form, follow_redirects=False).status_code == 303
        removal = {"csrf_token": _csrf(web, dashboard), "bar": "1"}
        r = web.post(f"{dashboard}/guests/{uid}/remove", data=removal, follow_redirects=False)
        assert r.status_code == 303
        page = web.get(dashboard, headers={"Accept-Language": "en"}).text
        assert "Barred guests" in page and f"/bans/{uid}/lift" in page
        assert _join(client, guest, event["code"]).status_code == 403
        lift = {"csrf_token": _csrf(web, dashboard)}
        assert web.post(f"{dashboard}/bans/{uid}/lift", data=lift, follow_redirects=False).status_code == 303
        assert "Barred guests" not in web.get(dashboard, headers={"Accept-Language": "en"}).text
    assert _join(client, guest, event["code"]).json()["joined"] is True


def test_zip_exports_are_limited_per_guest_and_one_at_a_time(
    client: TestClient,
    event: dict[str, Any],
    guest_headers: dict[str, str],
    throttle_storage: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_exports_per_guest", "3/hour")
    paths = ["/api/me/export", "/api/my-photos/download", "/api/me/export", "/api/my-photos/download"]
    responses = [client.get(path, headers=guest_headers) for path in paths]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert responses[0].headers["content-type"] == "application/zip"
    assert 0 < int(responses[3].headers["Retry-After"]) <= 3600
    # Another guest has their own allowance.
    other = bearer(register(client, event["code"], "other"))
    holder = EXPORT_SLOT.acquire(str(_me(client, other)))  # a zip of theirs streaming elsewhere
    assert holder is not None
    busy = client.get("/api/me/export", headers=other)
    assert busy.status_code == 429 and "still running" in busy.json()["error"]["message"]
    EXPORT_SLOT.release(str(_me(client, other)), holder)
    assert client.get("/api/my-photos/download", headers=other).status_code == 200
    assert client.get("/api/me/export", headers=other).status_code == 200  # its slot was let go


@pytest.mark.parametrize("value", ["0", str(2**63), "-1", "not a number", "1e400"])
def test_a_photos_filter_outside_the_id_range_is_refused_not_a_500(event: dict[str, Any], value: str) -> None:
    """What a guest's photo pages read from the request (the event shown, the photo just
    removed) is bounded; the "new" badge's last visit is kept on the server, never read from
    the browser."""
    with _web() as web:
        form = {
            "csrf_token": _csrf(web, "/"),
            "event_code": event["code"],
            "username": "alice",
            "email": "alice@example.com",
            "password": PASSWORD,
            "accept_face_processing": "yes",
        }
        assert web.post("/register", data=form, follow_redirects=False).status_code == 303
        web.cookies.set("seen", value, domain="testserver.local")
        assert web.get("/photos").status_code == 200  # a cookie of an earlier version is ignored
        for path, name in (("/photos", "event"), ("/photos", "removed"), ("/photos/grid", "event")):
            assert web.get(path, params={name: value}).status_code == 422, (path, name)


@pytest.mark.parametrize(
    "email",
    [
        "\u0430lice@example.com",  # a Cyrillic a among Latin letters
        "alice@ex\u0430mple.com",
        "\u0430\u0441\u0435@example.com",  # "ace" all in Cyrillic letters that look Latin
        "bob@xn--80ak6aa92e.com",  # "apple" in Cyrillic, spelled in punycode
        "\u03bf\u03ba@example.com",  # "ok" in Greek
    ],
)
def test_look_alike_emails_are_refused_at_registration(
    client: TestClient, event: dict[str, Any], email: str
) -> None:
    r = register(client, event["code"], "mallory", email=email)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_email", r.text
    answer = client.get("/api/check-user-availability", params={"email": email}).json()["email"]
    assert (answer["available"], answer["reason"]) == (False, "invalid")


@pytest.mark.parametrize(
    "email",
    [
        "\u0438\u0432\u0430\u043d@\u043f\u043e\u0447\u0442\u0430.\u0440\u0444",
        "山田@例え.jp",
        "josé@bücher.de",
    ],
)
def test_emails_written_in_one_script_or_a_usual_mix_are_accepted(
    client: TestClient, event: dict[str, Any], email: str
) -> None:
    assert register(client, event["code"], "someone", email=email).status_code == 201


@pytest.mark.parametrize("password", ["PartyOne2026!", "party-one rocks 2026", "my PARTY.ONE night!!"])
def test_a_password_built_on_the_events_name_is_refused_whatever_its_spacing_and_case(
    client: TestClient, org_headers: dict[str, str], password: str
) -> None:
    event = make_event(client, org_headers, "Party One")
    r = register(client, event["code"], "guest", password=password)
    assert r.status_code == 422 and r.json()["error"]["code"] == "weak_password"
    assert register(client, event["code"], "guest", password="velvet lantern orbit 58").status_code == 201


def test_an_organizer_may_delete_their_account_once_they_hold_no_events(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any]
) -> None:
    def delete_me() -> Any:
        return client.request("DELETE", "/api/me", json={"password": PASSWORD}, headers=org_headers)

    held = delete_me()
    assert held.status_code == 409 and held.json()["error"]["code"] == "organizer_has_events"
    assert client.delete(f"/api/events/{event['id']}", headers=org_headers).status_code == 204
    assert delete_me().status_code == 409  # until its erasure has finished
    drain_jobs()
    assert delete_me().status_code == 204
    assert client.get("/api/me", headers=org_headers).status_code == 401
