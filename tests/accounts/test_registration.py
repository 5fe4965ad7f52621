"""Registering with an event code: the happy path, each refusal, and the races."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.accounts.models import User
from app.events.models import EventMembership
from tests.helpers import login, make_event, make_organizer, register
from tools.accounts import PASSWORD


def test_registration_creates_the_account_and_its_membership_and_returns_a_token(
    client: TestClient, session: Session, event: dict[str, Any]
) -> None:
    r = register(client, event["code"], "alice", display_name="Alice ✨")
    assert r.status_code == 201
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["user"]["username"] == "alice"
    assert body["user"]["role"] == "guest"
    assert body["user"]["display_name"] == "Alice ✨"
    me = client.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert [e["code"] for e in me.json()["events"]] == [event["code"]]
    stored = session.scalar(select(User).where(User.username == "alice"))
    assert stored is not None and stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash


def test_registration_accepts_the_code_in_any_case_with_spaces(
    client: TestClient, event: dict[str, Any]
) -> None:
    r = register(client, f"  {event['code'].lower()} ", "bob")
    assert r.status_code == 201


def test_unknown_code_is_404_event_not_found(client: TestClient, event: dict[str, Any]) -> None:
    r = register(client, "NOPE-2222", "carol")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "event_not_found"


def test_closed_event_is_410_event_closed(client: TestClient, session: Session) -> None:
    org = make_organizer(session)
    headers = login(client, org["username"])
    event = make_event(client, headers)
    assert client.post(f"/api/events/{event['id']}/close", headers=headers).status_code == 200
    r = register(client, event["code"], "dave")
    assert r.status_code == 410
    assert r.json()["error"]["code"] == "event_closed"


def test_taken_username_is_409_username_taken_whatever_the_case(
    client: TestClient, event: dict[str, Any]
) -> None:
    assert register(client, event["code"], "erin").status_code == 201
    r = register(client, event["code"], "ERIN", email="other@example.com")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "username_taken"


def test_taken_email_is_409_email_taken_whatever_the_case(client: TestClient, event: dict[str, Any]) -> None:
    assert register(client, event["code"], "frank", email="frank@example.com").status_code == 201
    r = register(client, event["code"], "frank2", email="FRANK@Example.COM")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "email_taken"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short1", "at least"),
        ("password123", "too easy"),
        ("aaaaaaaaaaaa", "too easy"),
        ("grace-secret-1", "username"),
    ],
)
def test_weak_password_is_422_weak_password_with_the_reason(
    client: TestClient, event: dict[str, Any], password: str, why: str
) -> None:
    r = register(client, event["code"], "grace", password=password)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "weak_password"
    assert why in r.json()["error"]["message"]


@pytest.mark.parametrize("username", ["ab", "-alice", "al ice", "ñandú", "x" * 33, "a" * 5000])
def test_malformed_username_is_422_invalid_username(
    client: TestClient, event: dict[str, Any], username: str
) -> None:
    r = register(client, event["code"], username, email="u@example.com")
    assert r.status_code == 422
    assert r.json()["error"]["code"] in {"invalid_username", "validation_error"}


def test_malformed_email_is_422_invalid_email(client: TestClient, event: dict[str, Any]) -> None:
    r = register(client, event["code"], "henry", email="not-an-email")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_email"


def test_refused_registration_leaves_no_account_behind(client: TestClient, session: Session) -> None:
    assert register(client, "NOPE-2222", "ivan").status_code == 404
    assert session.scalar(select(func.count()).select_from(User).where(User.username == "ivan")) == 0


async def _register_concurrently(n: int, code: str, username: str, same_email: bool) -> list[httpx.Response]:
    from main import app

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:

        async def one(i: int) -> httpx.Response:
            email = f"{username}@example.com" if same_email else f"{username}{i}@example.com"
            body = {
                "event_code": code,
                "username": username,
                "email": email,
                "password": PASSWORD,
                "accept_face_processing": True,
            }
            return await ac.post("/api/register-with-event-code", json=body)

        return list(await asyncio.gather(*(one(i) for i in range(n))))


@pytest.mark.parametrize("same_email", [False, True], ids=["same-username", "same-username-and-email"])
def test_twenty_concurrent_registrations_of_one_username_give_one_201_and_nineteen_409(
    client: TestClient, session: Session, event: dict[str, Any], same_email: bool
) -> None:
    responses = asyncio.run(_register_concurrently(20, event["code"], "racer", same_email))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 19, [r.text for r in responses if r.status_code not in (201, 409)]
    codes = {r.json()["error"]["code"] for r in responses if r.status_code == 409}
    assert codes <= {"username_taken", "email_taken"}
    users = session.scalar(select(func.count()).select_from(User).where(func.lower(User.username) == "racer"))
    assert users == 1
    assert session.scalar(select(func.count()).select_from(EventMembership)) == 1


def test_registration_problems_names_every_field_in_error_at_once(
    client: TestClient, session: Session, event: dict[str, Any]
) -> None:
    from app.accounts.service import registration_problems

    assert register(client, event["code"], "alice").status_code == 201
    everything = registration_problems(
        session=session, username="a!", email="nope", password="short", consent=False, context=()
    )
    assert everything == {
        "username": "invalid_username",
        "email": "invalid_email",
        "password": "weak_password",
        "accept_face_processing": "consent_required",
    }
    taken = registration_problems(
        session=session,
        username="ALICE",
        email="Alice@Example.com",
        password=PASSWORD,
        consent=True,
        context=(),
    )
    assert taken == {"username": "username_taken", "email": "email_taken"}
    # The event's name is context the password must not be built on, as at registration.
    assert registration_problems(
        session=session,
        username="bob",
        email="bob@example.com",
        password="Summer Party 2026!",
        consent=True,
        context=["Summer Party"],
    ) == {"password": "weak_password"}
    assert (
        registration_problems(
            session=session,
            username="bob",
            email="bob@example.com",
            password=PASSWORD,
            consent=True,
            context=(),
        )
        == {}
    )
