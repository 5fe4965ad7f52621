"""Identity mistakes an attacker could use: reused ids, tokens that outlive a logout or a
password change, emails that differ only by Unicode form or case, passwords built on the
event's name, forged token subjects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.database import utcnow
from tests.helpers import bearer, register
from tools.accounts import PASSWORD

NEW_PASSWORD = "purple lantern orchestra"


def test_a_deleted_users_token_never_opens_the_next_account(
    client: TestClient, event: dict[str, Any], session: Session
) -> None:
    first = register(client, event["code"], "first")
    old_id, old_token = first.json()["user"]["id"], bearer(first)
    session.execute(text("DELETE FROM event_memberships WHERE user_id = :id"), {"id": old_id})
    session.execute(text("DELETE FROM users WHERE id = :id"), {"id": old_id})
    session.commit()
    second = register(client, event["code"], "second")
    assert second.json()["user"]["id"] > old_id
    r = client.get("/api/me", headers=old_token)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_token")


def test_logout_revokes_every_token_of_the_user(client: TestClient, event: dict[str, Any]) -> None:
    register(client, event["code"], "dave")
    phone = bearer(client.post("/api/login", json={"login": "dave", "password": PASSWORD}))
    laptop = bearer(client.post("/api/login", json={"login": "dave", "password": PASSWORD}))
    assert client.post("/api/logout", headers=phone).status_code == 204
    assert client.get("/api/me", headers=phone).status_code == 401
    assert client.get("/api/me", headers=laptop).status_code == 401
    again = client.post("/api/login", json={"login": "dave", "password": PASSWORD})
    assert client.get("/api/me", headers=bearer(again)).status_code == 200


def test_a_password_change_needs_the_current_one_and_revokes_old_tokens(
    client: TestClient, event: dict[str, Any]
) -> None:
    old = bearer(register(client, event["code"], "erin"))
    wrong = client.post(
        "/api/me/password",
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
        headers=old,
    )
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "wrong_password")
    weak = client.post(
        "/api/me/password", json={"current_password": PASSWORD, "new_password": "erin1234"}, headers=old
    )
    assert (weak.status_code, weak.json()["error"]["code"]) == (422, "weak_password")
    r = client.post(
        "/api/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=old
    )
    assert r.status_code == 200
    assert client.get("/api/me", headers=old).status_code == 401
    assert client.get("/api/me", headers=bearer(r)).status_code == 200
    assert client.post("/api/login", json={"login": "erin", "password": PASSWORD}).status_code == 401
    assert client.post("/api/login", json={"login": "erin", "password": NEW_PASSWORD}).status_code == 200


@pytest.mark.parametrize("other", ["élise@example.com", "E\u0301LISE@EXAMPLE.COM", "ÉLISE@example.com"])
def test_emails_that_differ_only_by_unicode_form_or_case_are_one_account(
    client: TestClient, event: dict[str, Any], other: str
) -> None:
    assert register(client, event["code"], "elise", email="Élise@Example.com").status_code == 201
    r = register(client, event["code"], "elise2", email=other)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "email_taken")
    assert client.post("/api/login", json={"login": other, "password": PASSWORD}).status_code == 200
    taken = client.get("/api/check-user-availability", params={"email": other}).json()["email"]
    assert taken["reason"] == "taken"


@pytest.mark.parametrize(
    "password", ["partyone", "Party One 2026", "PartyOne!", "frank2026", "frank@example"]
)
def test_passwords_built_on_the_event_or_the_account_are_refused(
    client: TestClient, org_headers: dict[str, str], password: str
) -> None:
    event = client.post("/api/events", json={"name": "Party One"}, headers=org_headers).json()
    r = register(client, event["code"], "frank", password=password)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "weak_password"), password
    assert "guess" in r.json()["error"]["message"] or "event" in r.json()["error"]["message"]


def _forged(sub: Any, **extra: Any) -> dict[str, str]:
    now = utcnow()
    claims = {"sub": sub, "ver": 0, "iat": now, "exp": now + timedelta(minutes=5), **extra}
    token = jwt.encode(claims, get_settings().signing_key(), algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def test_token_subjects_must_be_canonical_ascii_digits(client: TestClient, event: dict[str, Any]) -> None:
    user_id = register(client, event["code"], "gina").json()["user"]["id"]
    assert client.get("/api/me", headers=_forged(str(user_id))).status_code == 200
    for sub in [
        "\u0661" * len(str(user_id)),
        f" {user_id}",
        f"0{user_id}",
        f"{user_id}.0",
        f"+{user_id}",
        user_id,
    ]:
        assert client.get("/api/me", headers=_forged(sub)).status_code == 401, sub
    assert client.get("/api/me", headers=_forged(str(user_id), ver="0")).status_code == 401


def test_a_short_event_name_does_not_rule_out_passwords_containing_it(
    client: TestClient, org_headers: dict[str, str]
) -> None:
    event = client.post("/api/events", json={"name": "A"}, headers=org_headers).json()
    assert register(client, event["code"], "jules", password="a quiet amber harbour").status_code == 201
