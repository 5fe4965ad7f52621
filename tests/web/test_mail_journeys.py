"""The journeys of mail in Chromium against the real server (Gunicorn with its face worker)
mailing through a real SMTP server: a forgotten password reset from the mail, a sign-in from
the mailed link on a phone that has no cookies, the "your photos are here" link that opens the
new photo, and the one-click unsubscribe of the mail's header. axe-core audits every page."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect

from tests.web.conftest import Offsite, audit, new_context, phone, screenshot
from tools.accounts import PASSWORD, create_organizer_cli
from tools.browser import FRENCH, jpeg_file, register_on_page
from tools.harness.server import free_port, running_server
from tools.harness.smtp import SmtpServer, running_smtp
from tools.mailbox import link_with, text_body, to_address
from tools.photos import fixture_bytes

pytestmark = [pytest.mark.slow, pytest.mark.once]
NEW_PASSWORD = "otter lantern quietly marches"
Server = tuple[str, dict[str, str]]


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    with running_smtp(Path(tmp_path_factory.mktemp("smtp"))) as server:
        yield server


@pytest.fixture(scope="module")
def mail_server(smtp: SmtpServer) -> Iterator[Server]:
    """The service mailing through ``smtp``, its links pointing at itself, and "your photos
    are here" a second after the last match."""
    port = free_port()
    env = {
        "PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SMTP_URL": smtp.url,
        "SMTP_CA_FILE": str(smtp.ca_file),
        "NOTIFY_QUIET_SECONDS": "1",
        "NOTIFY_MIN_INTERVAL_SECONDS": "0",
        "FACE_WORKERS": "1",
    }
    with running_server(workers=2, env=env) as running:
        yield running


def _mail(smtp: SmtpServer, address: str, fragment: str, timeout: float = 60) -> EmailMessage:
    """The first message to ``address`` whose text has a link containing ``fragment``."""
    deadline = time.monotonic() + timeout
    while True:
        for message in smtp.messages():
            if to_address(message) == address and fragment in text_body(message):
                return message
        assert time.monotonic() < deadline, f"no mail to {address} with {fragment!r} came"
        time.sleep(0.2)


def _organizer_event(server: Server, name: str) -> tuple[dict[str, str], dict[str, Any]]:
    base, env = server
    username = "org-" + name.lower().replace(" ", "-")
    create_organizer_cli(env, username=username)
    with httpx.Client(base_url=base, timeout=30) as c:
        token = c.post("/api/login", json={"login": username, "password": PASSWORD}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        event = c.post("/api/events", json={"name": name}, headers=headers).json()
    return headers, event


def _api_guest(base: str, event: dict[str, Any], username: str) -> dict[str, str]:
    """A guest registered through the API: their bearer header."""
    body = {
        "event_code": event["code"],
        "username": username,
        "email": f"{username}@example.com",
        "password": PASSWORD,
        "accept_face_processing": True,
    }
    with httpx.Client(base_url=base, timeout=30) as c:
        answer = c.post("/api/register-with-event-code", json=body)
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.get_by_label("Nom d'utilisateur ou e-mail", exact=True).fill(username)
    page.get_by_label(FRENCH.password, exact=True).fill(password)
    page.locator("form[action='/login'] button[type=submit]").click()


def test_a_guest_resets_a_forgotten_password_from_the_mail_then_logs_in_with_it(
    clean_db: None,
    mail_server: Server,
    smtp: SmtpServer,
    browser: Browser,
    playwright: Playwright,
    offsite: Offsite,
) -> None:
    base, _env = mail_server
    _org, event = _organizer_event(mail_server, "Reset Ball")
    _api_guest(base, event, "forgetful")
    page = new_context(browser, offsite, **phone(playwright, "fr-FR")).new_page()
    page.goto(f"{base}/login")
    audit(page)
    page.get_by_role("link", name="Mot de passe oublié ?").click()
    page.get_by_label("Votre adresse e-mail", exact=True).fill("forgetful@example.com")
    audit(page)
    page.get_by_role("button", name="M'envoyer un lien").click()
    expect(page.get_by_role("status")).to_contain_text("un message vient d'y être envoyé")
    audit(page)

    link = link_with(_mail(smtp, "forgetful@example.com", "/reset-password/"), "/reset-password/")
    assert link.startswith(f"{base}/reset-password/")
    page.goto(link)
    page.get_by_label("Nouveau mot de passe", exact=True).fill(NEW_PASSWORD)
    audit(page)
    screenshot(page, "mail-reset-password")
    page.get_by_role("button", name="Enregistrer et se connecter").click()
    page.wait_for_url(f"{base}/photos")

    fresh = new_context(browser, offsite, **phone(playwright, "fr-FR")).new_page()
    fresh.goto(f"{base}/login")
    _log_in(fresh, "forgetful", NEW_PASSWORD)
    fresh.wait_for_url(f"{base}/photos")
    fresh.goto(link)  # the link worked once
    fresh.get_by_label("Nouveau mot de passe", exact=True).fill(NEW_PASSWORD + " again")
    fresh.get_by_role("button", name="Enregistrer et se connecter").click()
    expect(fresh.get_by_role("heading", level=1)).to_have_text("Ce lien ne fonctionne plus")
    audit(fresh)


def test_a_guest_signs_in_from_the_mailed_link_on_a_phone_without_cookies(
    clean_db: None,
    mail_server: Server,
    smtp: SmtpServer,
    browser: Browser,
    playwright: Playwright,
    offsite: Offsite,
) -> None:
    base, _env = mail_server
    _org, event = _organizer_event(mail_server, "Link Party")
    _api_guest(base, event, "linked")
    asking = new_context(browser, offsite, **phone(playwright, "en-US")).new_page()
    asking.goto(f"{base}/login")
    asking.get_by_label("Your email address", exact=True).fill("linked@example.com")
    asking.get_by_role("button", name="Email me a sign-in link").click()
    expect(asking.get_by_label("Code from the message", exact=True)).to_be_visible()
    audit(asking)

    link = link_with(_mail(smtp, "linked@example.com", "/login/email/"), "/login/email/")
    page = new_context(browser, offsite, **phone(playwright, "en-US")).new_page()
    page.goto(link)
    audit(page)
    screenshot(page, "mail-sign-in-link")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}/photos")
    page.goto(f"{base}/account")
    expect(page.get_by_label("Your email address", exact=True)).to_have_value("linked@example.com")
    expect(page.locator("#address-status")).to_have_text("Your address is verified.")
    audit(page)


def test_the_photos_mail_s_link_opens_the_new_photo_after_signing_in(
    clean_db: None,
    mail_server: Server,
    smtp: SmtpServer,
    browser: Browser,
    playwright: Playwright,
    offsite: Offsite,
) -> None:
    base, _env = mail_server
    org, event = _organizer_event(mail_server, "Photo Gala")
    page = new_context(browser, offsite, **phone(playwright, "fr-FR")).new_page()
    page.goto(f"{base}/e/{event['code']}")
    register_on_page(page, FRENCH, "pictured")
    page.get_by_label(FRENCH.selfie, exact=True).set_input_files(
        files=[jpeg_file("obama.jpg", fixture_bytes("obama.jpg"))]
    )
    expect(page.locator("#verdict [data-status=ready]")).to_be_visible(timeout=60_000)
    page.goto(link_with(_mail(smtp, "pictured@example.com", "/verify-email/"), "/verify-email/"))
    audit(page)
    page.get_by_role("button", name="Confirmer mon adresse").click()
    expect(page.get_by_role("status")).to_contain_text("pictured@example.com est confirmée")
    audit(page)

    with httpx.Client(base_url=base, timeout=60) as c:
        files = [("files", ("party.jpg", fixture_bytes("obama2.jpg")))]
        assert c.post(f"/api/events/{event['id']}/photos", files=files, headers=org).status_code == 202
    mail = _mail(smtp, "pictured@example.com", "/photos?event=", timeout=120)
    link = link_with(mail, "/photos?event=")
    assert link == f"{base}/photos?event={event['id']}"

    fresh = new_context(browser, offsite, **phone(playwright, "fr-FR")).new_page()
    fresh.goto(link)
    fresh.wait_for_url(f"{base}/login?next=%2Fphotos%3Fevent%3D{event['id']}")
    _log_in(fresh, "pictured")
    fresh.wait_for_url(link)
    tiles = fresh.locator("#grid .grid li")
    expect(tiles).to_have_count(1)
    expect(fresh.locator("#event-filter")).to_contain_text("Photo Gala")
    audit(fresh)
    screenshot(fresh, "mail-photos-link")
    tiles.first.locator("a").click()
    expect(fresh.locator("img.full")).to_be_visible()


def test_one_click_unsubscribe_from_the_mail_header_turns_the_event_s_switch_off(
    clean_db: None,
    mail_server: Server,
    smtp: SmtpServer,
    browser: Browser,
    playwright: Playwright,
    offsite: Offsite,
) -> None:
    base, _env = mail_server
    org, event = _organizer_event(mail_server, "Quiet Fair")
    guest = _api_guest(base, event, "quiet")
    verify = link_with(_mail(smtp, "quiet@example.com", "/verify-email/"), "/verify-email/")
    with httpx.Client(base_url=base, timeout=60) as c:
        assert c.post("/api/email/verify", json={"token": verify.rsplit("/", 1)[1]}).status_code == 200
        selfie = {"file": ("selfie.jpg", fixture_bytes("obama.jpg"), "image/jpeg")}
        state = c.post("/api/upload-selfie", files=selfie, headers=guest).json()
        deadline = time.monotonic() + 60
        while state["status"] in ("checking", "matching") and time.monotonic() < deadline:
            state = c.get("/api/selfie", params={"wait": 10}, headers=guest).json()
        assert state["status"] == "ready", state
        files = [("files", ("fair.jpg", fixture_bytes("obama2.jpg")))]
        assert c.post(f"/api/events/{event['id']}/photos", files=files, headers=org).status_code == 202
    mail = _mail(smtp, "quiet@example.com", "/photos?event=", timeout=120)
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(mail["List-Unsubscribe"]).strip().strip("<>")
    assert url.startswith(f"{base}/unsubscribe/")

    # What a mail provider sends: a form POST, no cookie, no CSRF token.
    one_click = httpx.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=30)
    assert one_click.status_code == 200 and "Quiet Fair" in one_click.text

    page = new_context(browser, offsite, **phone(playwright, "fr-FR")).new_page()
    page.goto(f"{base}/account")
    _log_in(page, "quiet")
    page.wait_for_url(f"{base}/account")
    expect(page.get_by_role("switch", name="Quiet Fair")).not_to_be_checked()
    expect(
        page.get_by_role("switch", name="Me prévenir par e-mail quand de nouvelles photos de moi arrivent")
    ).to_be_checked()
    audit(page)
    screenshot(page, "mail-account-notifications")
