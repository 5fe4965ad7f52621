"""Login, tokens, /api/me and password re-hashing."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.models import User
from app.core import security
from tests.helpers import login, register
from tools.accounts import PASSWORD


@pytest.fixture
def guest(client: TestClient, event: dict[str, Any]) -> dict[str, Any]:
    """Alice, a guest whose email has capitals."""
    r = register(client, event["code"], "alice", email="Alice@Example.com")
    assert r.status_code == 201
    user: dict[str, Any] = r.json()["user"]
    return user


@pytest.mark.parametrize("login_as", ["alice", "ALICE", "alice@example.com", " Alice@EXAMPLE.com "])
def test_login_with_username_or_email_in_any_case_returns_a_bearer_token(
    client: TestClient, guest: dict[str, Any], login_as: str
) -> None:
    r = client.post("/api/login", json={"login": login_as, "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["user"]["id"] == guest["id"]
    assert body["user"]["last_login_at"] is not None
    me = client.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["username"] == "alice"


def test_wrong_password_and_unknown_user_get_the_same_401(client: TestClient, guest: dict[str, Any]) -> None:
    wrong = client.post("/api/login", json={"login": "alice", "password": "not the password"})
    unknown = client.post("/api/login", json={"login": "nobody", "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"


def test_unknown_user_costs_one_argon2_verification_like_a_wrong_password(
    client: TestClient, guest: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    hasher = security.password_hasher()
    real_verify = security.argon2_verify

    def counting_verify(hash: str, password: str) -> bool:
        calls.append(hash)
        return real_verify(hash, password)

    monkeypatch.setattr(security, "argon2_verify", counting_verify)
    client.post("/api/login", json={"login": "alice", "password": "wrong password"})
    client.post("/api/login", json={"login": "ghost", "password": "wrong password"})
    assert len(calls) == 2
    # Both hashes were computed with the same parameters: the same work.
    params = [h.split("$")[3] for h in calls]
    assert params[0] == params[1]
    assert not hasher.check_needs_rehash(calls[1])


def test_login_rehashes_a_password_stored_with_old_argon2_parameters(
    client: TestClient, session: Session, guest: dict[str, Any]
) -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    user = session.get_one(User, guest["id"])
    user.password_hash = old
    session.commit()
    assert client.post("/api/login", json={"login": "alice", "password": PASSWORD}).status_code == 200
    session.expire_all()
    new_hash = session.scalar(select(User.password_hash).where(User.id == guest["id"]))
    assert new_hash is not None and new_hash != old
    assert not security.needs_rehash(new_hash)
    assert client.post("/api/login", json={"login": "alice", "password": PASSWORD}).status_code == 200


def test_hashes_are_standard_argon2id_strings_that_either_library_verifies() -> None:
    stored = security.hash_password(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PasswordHasher().verify(stored, PASSWORD)
    assert security.argon2_verify(stored, PASSWORD) and not security.argon2_verify(stored, "nope")
    # A hash with two lanes (which libsodium cannot compute) still verifies, then is re-hashed.
    two_lanes = PasswordHasher(parallelism=2).hash(PASSWORD)
    assert security.argon2_verify(two_lanes, PASSWORD) and security.needs_rehash(two_lanes)
    assert not security.argon2_verify("$argon2id$garbage", PASSWORD)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-jwt", "Basic YWxpY2U6cGFzcw==", "Bearer eyJhbGciOiJub25lIn0.e30."],
)
def test_me_without_a_valid_token_is_401(client: TestClient, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    r = client.get("/api/me", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] in {"not_authenticated", "invalid_token"}
    assert r.headers["www-authenticate"] == "Bearer"


def test_token_of_a_deleted_user_is_refused(
    client: TestClient, session: Session, guest: dict[str, Any]
) -> None:
    headers = login(client, "alice")
    session.delete(session.get(User, guest["id"]))
    session.commit()
    r = client.get("/api/me", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"


def test_a_token_signed_with_another_key_is_refused(client: TestClient, guest: dict[str, Any]) -> None:
    from app.core.config import Settings

    forged = security.create_access_token(
        subject=str(guest["id"]), settings=Settings(secret_key=secrets.token_urlsafe(32), environment="test")
    )
    r = client.get("/api/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_password_hashes_run_in_threads_nicer_than_the_requests_that_wait_for_them() -> None:
    script = (
        "import os, threading\n"
        "from app.core import security\n"
        "def nice(): return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())\n"
        "print(security.run_in_hash_thread(nice) - nice())\n"
    )
    env = {**os.environ, "PASSWORD_HASH_NICE": "10"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert int(done.stdout) == min(10, 19 - own)
