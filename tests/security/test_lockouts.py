"""Lock-outs by others' guessing: an account's owner still gets in with the right password
from a browser they used before (device cookies) while attackers hold the account's limit,
and from a new browser with a sign-in link mailed to her;
a venue's address past its failure limit still lets a right password in; and the password
asked again by a held session is throttled and counted like a login. Counts in memory and in
the real Redis."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.accounts import devices
from app.core.config import get_settings
from tests.helpers import bearer, drain_jobs, register
from tests.mail.conftest import latest_link
from tools.accounts import PASSWORD
from tools.harness.smtp import SmtpServer

CSRF = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


def _browser(address: str, cookies: dict[str, str] | None = None) -> TestClient:
    """A browser at ``address`` over HTTPS (the cookies are ``Secure``)."""
    from main import app

    return TestClient(app, base_url="https://testserver", client=(address, 50000), cookies=cookies)


def _login(c: TestClient, password: str, login: str = "alice") -> int:
    return c.post("/api/login", json={"login": login, "password": password}).status_code


@pytest.fixture
def alice(client: TestClient, event: dict[str, Any]) -> dict[str, str]:
    """Alice, a guest registered through the API: her ``Authorization`` header."""
    r = register(client, event["code"], "alice")
    assert r.status_code == 201, r.text
    return bearer(r)


def test_the_owner_gets_in_from_a_browser_she_used_before_while_attackers_hold_her_accounts_limit(
    alice: dict[str, str], throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_login_failures_per_account", "6/minute")
    with _browser("10.0.0.7") as phone:
        assert _login(phone, PASSWORD) == 200
        assert devices.DEVICE_COOKIE in phone.cookies
        # Attackers from many addresses fill the account's limit.
        statuses = []
        for i in range(8):
            with _browser(f"10.1.0.{i}") as bot:
                statuses.append(_login(bot, "nope nope"))
        assert statuses == [401] * 6 + [429] * 2
        # An attacker who guessed right learns nothing: without a device cookie, refused.
        with _browser("10.1.0.99") as bot:
            r = bot.post("/api/login", json={"login": "alice", "password": PASSWORD})
            assert r.status_code == 429 and int(r.headers["Retry-After"]) <= 60
        # Alice, on her phone (from her address or any other), gets in with the right password.
        assert _login(phone, PASSWORD) == 200
        with _browser("10.9.9.9") as same_phone_elsewhere:
            same_phone_elsewhere.cookies.update(phone.cookies)
            assert _login(same_phone_elsewhere, PASSWORD) == 200
        # A wrong password from her phone is still a plain 401, counted against the phone only.
        assert _login(phone, "typo typo") == 401
    # A new browser of hers is refused the password while the attack lasts...
    with _browser("10.0.0.7") as laptop:
        assert _login(laptop, PASSWORD) == 429


def test_a_new_browser_of_the_owner_gets_in_by_a_mailed_link_while_attackers_hold_her_limit(
    alice: dict[str, str], smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_login_failures_per_account", "3/minute")
    for i in range(4):
        with _browser(f"10.1.0.{i}") as bot:
            _login(bot, "nope nope")
    with _browser("10.0.0.7") as laptop:
        assert _login(laptop, PASSWORD) == 429
        assert laptop.post("/api/login/email", json={"email": "alice@example.com"}).status_code == 202
        drain_jobs()
        link = latest_link(smtp, "alice@example.com", "/login/email/")
        r = laptop.post("/api/login/email/confirm", json={"token": link.rsplit("/", 1)[1]})
        assert r.status_code == 200 and r.json()["user"]["username"] == "alice"
        # ... and from then on this browser holds a device cookie of hers: the password works.
        assert _login(laptop, PASSWORD) == 200


def test_a_forged_or_foreign_device_cookie_does_not_open_an_account_under_attack(
    client: TestClient, event: dict[str, Any], alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_login_failures_per_account", "3/minute")
    assert register(client, event["code"], "mallory").status_code == 201
    with _browser("10.3.0.1") as mallory:
        assert _login(mallory, PASSWORD, login="mallory") == 200  # her own device cookie
        for _ in range(3):
            assert _login(mallory, "guess guess") == 401
        assert _login(mallory, PASSWORD) == 429  # Mallory's cookie is not Alice's
    alice_id = client.get("/api/me", headers=alice).json()["id"]
    real = devices.new_token(alice_id)
    assert devices.trusted_device(real, alice_id) is not None
    for forged in (real[:-4] + "0000", real.replace(f"{alice_id}.", "999.", 1)):
        with _browser("10.3.0.2", cookies={devices.DEVICE_COOKIE: forged}) as forger:
            assert _login(forger, PASSWORD) == 429  # not signed by the server for Alice


def test_a_device_cookie_guessing_past_its_own_limit_is_refused_like_any_browser(
    alice: dict[str, str], throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "throttle_login_failures_per_device", "3/minute")
    monkeypatch.setattr(settings, "throttle_login_failures_per_account_address", "2/minute")
    with _browser("10.0.0.8") as stolen:
        assert _login(stolen, PASSWORD) == 200
        # Its own 3 failures, then the address's 2 for the account, then refused unchecked.
        assert [_login(stolen, f"guess {i}") for i in range(6)] == [401] * 5 + [429]
        assert _login(stolen, PASSWORD) == 429


def test_a_venue_address_past_its_failure_limit_still_lets_a_right_password_in(
    client: TestClient, event: dict[str, Any], throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_login_failures_per_address", "6/minute")
    for name in ("alice", "bob"):
        assert register(client, event["code"], name).status_code == 201
    with _browser("192.0.2.50") as venue:
        # Someone at the venue (or a page making its guests' browsers post) fails 6 times.
        assert [_login(venue, "wrong password", login=f"ghost{i}") for i in range(6)] == [401] * 6
        # Past the limit, wrong passwords and unknown logins are refused...
        assert _login(venue, "wrong password", login="bob") == 429
        refused = venue.post("/api/login", json={"login": "ghost9", "password": "wrong password"})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) <= 60
    # ...but every guest behind that address with the right password gets in, with no cookie.
    with _browser("192.0.2.50") as guest_phone:
        assert _login(guest_phone, PASSWORD, login="alice") == 200
        assert _login(guest_phone, PASSWORD, login="bob") == 200


@pytest.mark.parametrize("recheck", ["delete", "password"])
def test_the_password_asked_again_by_a_held_session_is_throttled_and_counted_as_a_login(
    client: TestClient,
    alice: dict[str, str],
    throttle_storage: str,
    monkeypatch: pytest.MonkeyPatch,
    recheck: str,
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_login_failures_per_account_address", "5/minute")

    def attempt(password: str) -> Any:
        if recheck == "delete":
            return client.request("DELETE", "/api/me", json={"password": password}, headers=alice)
        body = {"current_password": password, "new_password": "another long passphrase 93"}
        return client.post("/api/me/password", json=body, headers=alice)

    statuses = [attempt(f"guess {i}").status_code for i in range(7)]
    assert statuses == [401] * 5 + [429] * 2
    refused = attempt(PASSWORD)  # even the right one: the guesser learns nothing
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_requests"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    # The failures count toward the account's login limits too.
    assert _login(client, PASSWORD) == 429
    assert client.get("/api/me", headers=alice).status_code == 200  # nothing was erased


def test_the_account_deletion_page_counts_wrong_passwords_like_a_login(
    event: dict[str, Any], throttle_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_login_failures_per_account_address", "3/minute")
    with _browser("10.4.0.1") as web:
        token = CSRF.search(web.get("/").text)
        assert token
        form = {
            "csrf_token": token.group(1),
            "event_code": event["code"],
            "username": "alice",
            "email": "alice@example.com",
            "password": PASSWORD,
            "accept_face_processing": "yes",
        }
        assert web.post("/register", data=form, follow_redirects=False).status_code == 303
        # Without her device cookie: a session held on another browser.
        web.cookies.delete(devices.DEVICE_COOKIE)

        def delete(password: str) -> Any:
            found = CSRF.search(web.get("/account").text)
            assert found
            return web.post("/account/delete", data={"csrf_token": found.group(1), "password": password})

        assert [delete(f"guess {i}").status_code for i in range(4)] == [401, 401, 401, 429]
        page = delete(PASSWORD)
        assert page.status_code == 429 and "Retry-After" in page.headers
        assert web.get("/account").status_code == 200  # still there
