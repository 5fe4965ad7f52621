"""GET /api/check-user-availability."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.helpers import login, make_event, make_organizer, register


def test_free_username_and_email_are_available(client: TestClient) -> None:
    r = client.get("/api/check-user-availability", params={"username": "newbie", "email": "n@example.com"})
    assert r.status_code == 200
    assert r.json() == {
        "username": {"value": "newbie", "available": True, "reason": None, "message": None},
        "email": {"value": "n@example.com", "available": True, "reason": None, "message": None},
    }


def test_only_the_fields_asked_for_are_answered(client: TestClient) -> None:
    r = client.get("/api/check-user-availability", params={"email": "n@example.com"})
    assert set(r.json()) == {"email"}


def test_taken_values_say_taken_whatever_the_case(client: TestClient, session: Session) -> None:
    org = make_organizer(session)
    event = make_event(client, login(client, org["username"]))
    assert register(client, event["code"], "alice").status_code == 201
    r = client.get("/api/check-user-availability", params={"username": "ALICE", "email": "ALICE@example.com"})
    body = r.json()
    assert body["username"]["available"] is False and body["username"]["reason"] == "taken"
    assert body["email"]["available"] is False and body["email"]["reason"] == "taken"


def test_malformed_values_say_invalid_with_a_message(client: TestClient) -> None:
    r = client.get("/api/check-user-availability", params={"username": "a b", "email": "nope"})
    body = r.json()
    assert body["username"]["reason"] == "invalid" and "characters" in body["username"]["message"]
    assert body["email"]["reason"] == "invalid" and "@" in body["email"]["message"]


def test_asking_for_nothing_is_a_clear_422(client: TestClient) -> None:
    r = client.get("/api/check-user-availability")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "missing_parameter"
