"""Sessions and secrets: the CSRF token is bound to the session and its cookie is replaced at
login; cookies are ``Secure`` whenever the page came over HTTPS; a weak ``SECRET_KEY`` is
refused in every environment (findings 14 and 21 of the second security review)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.core.config import Settings, get_settings
from tests.helpers import csrf
from tools.accounts import PASSWORD


def _register(web: TestClient, code: str, username: str) -> None:
    form = {
        "csrf_token": csrf(web),
        "event_code": code,
        "username": username,
        "email": f"{username}@example.com",
        "password": PASSWORD,
        "accept_face_processing": "yes",
    }
    assert web.post("/register", data=form, follow_redirects=False).status_code == 303


@pytest.mark.parametrize("secret", ["dev", "a" * 32, "ab" * 16, "abcdefgh" * 4, "short but not dev"])
@pytest.mark.parametrize("environment", ["development", "production"])
def test_a_weak_secret_key_is_refused_in_every_environment(secret: str, environment: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(environment=environment, secret_key=secret)


def test_random_secret_keys_of_32_characters_or_more_are_accepted() -> None:
    for secret in (secrets.token_hex(16), secrets.token_urlsafe(32), secrets.token_hex(32)):
        assert Settings(environment="production", secret_key=secret).signing_key() == secret


def test_a_csrf_token_made_for_another_session_is_refused(web: TestClient, event: dict[str, Any]) -> None:
    # The attacker signs in as themself, reads their own page's token, and plants their csrf
    # cookie in the victim's browser (a sibling subdomain can): with the victim's session the
    # token does not pass.
    from main import app

    attacker = TestClient(app, base_url="https://testserver")
    _register(attacker, event["code"], "mallory")
    planted_cookie, attackers_token = attacker.cookies["csrf"], csrf(attacker, "/account")
    _register(web, event["code"], "victim")
    web.cookies.set("csrf", planted_cookie)
    refused = web.post("/account/delete-selfie", data={"csrf_token": attackers_token}, follow_redirects=False)
    assert refused.status_code == 403
    allowed = web.post(
        "/account/delete-selfie", data={"csrf_token": csrf(web, "/account")}, follow_redirects=False
    )
    assert allowed.status_code == 303


def test_a_token_from_before_login_does_not_pass_after_it(web: TestClient, event: dict[str, Any]) -> None:
    before = csrf(web, "/login")
    cookie_before = web.cookies["csrf"]
    _register(web, event["code"], "alice")
    assert web.cookies["csrf"] != cookie_before  # replaced at login
    stale = web.post("/account/delete-selfie", data={"csrf_token": before}, follow_redirects=False)
    assert stale.status_code == 403


def test_cookies_are_secure_on_https_even_in_development(
    client: TestClient, event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from main import app

    monkeypatch.setattr(get_settings(), "environment", "development")
    with TestClient(app, base_url="https://testserver") as web:
        page = web.get("/login")
        assert "secure" in page.headers["set-cookie"].lower()
    with TestClient(app, base_url="http://testserver") as plain:
        # Plain HTTP in development (a laptop): a Secure cookie would never come back.
        assert "secure" not in plain.get("/login").headers["set-cookie"].lower()
