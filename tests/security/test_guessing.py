"""Attacks by guessing: event codes, join links and passwords, from one address or many,
with the throttles' counts in memory and in the real Redis; and a venue's crowd behind one
address that the same throttles let through."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import get_settings
from app.events.service import CODE_ALPHABET, CODE_SUFFIX_LENGTH
from tests.helpers import bearer, register
from tools.accounts import PASSWORD


def _client_at(address: str) -> TestClient:
    from main import app

    return TestClient(app, client=(address, 50000))


def _random_code() -> str:
    return "PARTY-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_SUFFIX_LENGTH))


def test_codes_have_eight_random_characters_and_old_four_character_codes_still_work(
    client: TestClient, org_headers: dict[str, str], session: Any
) -> None:
    from sqlalchemy import text

    event = client.post("/api/events", json={"name": "Summer Party"}, headers=org_headers).json()
    prefix, suffix = event["code"].split("-")
    assert prefix == "SUMMER" and len(suffix) == 8 and set(suffix) <= set(CODE_ALPHABET)
    assert not set(suffix) & set("0O1IL")
    session.execute(text("UPDATE events SET code = 'OLD-7K2Q' WHERE id = :id"), {"id": event["id"]})
    session.commit()
    r = client.post("/api/check-event-code", json={"code": " old-7k2q "})
    assert r.status_code == 200 and r.json()["event"]["id"] == event["id"]


def test_a_scan_of_event_codes_is_stopped_after_a_few_guesses(
    client: TestClient, event: dict[str, Any], throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_code_failures_per_address", "5/minute")
    statuses = [
        client.post("/api/check-event-code", json={"code": _random_code()}).status_code for _ in range(30)
    ]
    assert statuses[:5] == [404] * 5 and set(statuses[5:]) == {429}
    refused = client.post("/api/check-event-code", json={"code": _random_code()})
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    # Every way in with a code counts: registration and join links too.
    assert register(client, _random_code(), "mallory").status_code == 429
    assert client.get("/e/not-a-real-token", follow_redirects=False).status_code == 429
    # Another address is not affected.
    with _client_at("10.0.0.2") as other:
        assert other.post("/api/check-event-code", json={"code": event["code"]}).status_code == 200


def test_closed_events_count_as_wrong_guesses(
    client: TestClient, org_headers: dict[str, str], throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_code_failures_per_address", "3/minute")
    event = client.post("/api/events", json={"name": "Closed"}, headers=org_headers).json()
    client.post(f"/api/events/{event['id']}/close", headers=org_headers)
    statuses = [
        client.post("/api/check-event-code", json={"code": event["code"]}).status_code for _ in range(4)
    ]
    assert statuses == [410, 410, 410, 429]


def test_the_join_link_of_the_qr_code_leads_to_the_event(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any]
) -> None:
    detail = client.get(f"/api/events/{event['id']}", headers=org_headers).json()
    assert detail["join_path"].startswith("/e/") and len(detail["join_path"]) >= 3 + 22
    r = client.get(detail["join_path"], follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/?event={event['code']}"
    assert client.get("/e/" + "x" * 22, follow_redirects=False).status_code == 404
    assert "join_token" not in detail
    assert (
        "join_path" not in client.post("/api/check-event-code", json={"code": event["code"]}).json()["event"]
    )


def test_password_guessing_on_an_account_is_stopped_without_locking_its_owner_out(
    client: TestClient, event: dict[str, Any], throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_login_failures_per_account_address", "5/minute")
    register(client, event["code"], "alice")
    guesses = [
        client.post("/api/login", json={"login": "alice", "password": f"guess {i}"}).status_code
        for i in range(20)
    ]
    assert guesses[:5] == [401] * 5 and set(guesses[5:]) == {429}
    # The right password from the attacker's address is refused too: the attack learns nothing.
    blocked = client.post("/api/login", json={"login": "alice", "password": PASSWORD})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) <= 60
    # Alice, from her own phone, logs in; her success does not reset the attacker's count.
    with _client_at("10.0.0.7") as phone:
        assert (
            phone.post("/api/login", json={"login": "ALICE@example.com", "password": PASSWORD}).status_code
            == 200
        )
    assert client.post("/api/login", json={"login": "alice", "password": PASSWORD}).status_code == 429


def test_password_guessing_from_many_addresses_is_stopped_per_account(
    client: TestClient, event: dict[str, Any], throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_login_failures_per_account", "6/minute")
    register(client, event["code"], "bob")
    statuses = []
    for i in range(8):
        with _client_at(f"10.1.0.{i}") as bot:
            statuses.append(
                bot.post("/api/login", json={"login": "bob", "password": "nope nope"}).status_code
            )
    assert statuses == [401] * 6 + [429] * 2


def test_one_address_guessing_many_accounts_is_stopped_and_unknown_accounts_look_the_same(
    client: TestClient, event: dict[str, Any], throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_login_failures_per_address", "6/minute")
    register(client, event["code"], "carol")
    logins = ["carol", "ghost1", "ghost2", "ghost3", "ghost4", "ghost5", "carol", "ghost6"]
    statuses = [
        client.post("/api/login", json={"login": name, "password": "wrong password"}).status_code
        for name in logins
    ]
    assert statuses == [401] * 6 + [429] * 2


def test_availability_checks_are_throttled_per_address(
    client: TestClient, throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_availability_per_address", "10/minute")
    statuses = [
        client.get("/api/check-user-availability", params={"username": f"name{i}"}).status_code
        for i in range(12)
    ]
    assert statuses == [200] * 10 + [429] * 2


@pytest.mark.parametrize("throttle_storage", ["redis"], indirect=True)
def test_a_venue_of_300_guests_behind_one_address_is_not_refused(
    client: TestClient, event: dict[str, Any], throttle_storage: str
) -> None:
    """Default limits: every guest checks the code and their username, one in ten mistypes
    the code first, 40 register and log in, one in four of those mistypes the password."""
    for i in range(300):
        if i % 10 == 0:
            assert client.post("/api/check-event-code", json={"code": _random_code()}).status_code == 404
        assert client.post("/api/check-event-code", json={"code": event["code"]}).status_code == 200
        r = client.get(
            "/api/check-user-availability", params={"username": f"guest{i}", "email": f"g{i}@x.org"}
        )
        assert r.status_code == 200
    for i in range(40):
        assert register(client, event["code"], f"guest{i}").status_code == 201
        if i % 4 == 0:
            assert (
                client.post("/api/login", json={"login": f"guest{i}", "password": "typo typo"}).status_code
                == 401
            )
        token = client.post("/api/login", json={"login": f"guest{i}", "password": PASSWORD})
        assert token.status_code == 200
        assert client.get("/api/me", headers=bearer(token)).status_code == 200
