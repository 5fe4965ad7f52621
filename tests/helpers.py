"""Small builders shared by tests: they go through the real services and API."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.accounts.models import Role
from app.accounts.service import create_user

PASSWORD = "correct horse battery"
_seq = itertools.count(1)


def make_organizer(session: Session, username: str | None = None) -> dict[str, Any]:
    username = username or f"org{next(_seq)}"
    user = create_user(
        session=session,
        username=username,
        email=f"{username}@example.com",
        password=PASSWORD,
        role=Role.organizer,
    )
    session.commit()
    return {"id": user.id, "username": username}


def login(client: TestClient, login: str, password: str = PASSWORD) -> dict[str, str]:
    r = client.post("/api/login", json={"login": login, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def make_event(client: TestClient, headers: dict[str, str], name: str = "Summer Party") -> dict[str, Any]:
    r = client.post("/api/events", json={"name": name}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def register(client: TestClient, code: str, username: str, **extra: Any) -> Any:
    body = {
        "event_code": code,
        "username": username,
        "email": extra.pop("email", f"{username}@example.com"),
        "password": extra.pop("password", PASSWORD),
        **extra,
    }
    return client.post("/api/register-with-event-code", json=body)
