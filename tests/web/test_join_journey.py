"""A guest of one event joins a second one from its QR code's link, on a phone in French, in
Chromium against the real server: "Rejoindre", then the second event's photos, found with the
selfie they already took. The FR / EN switch keeps the event's code. axe-core audits each page."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, Playwright, expect

from tests.web.conftest import Offsite, audit, new_context, phone, screenshot
from tools.accounts import PASSWORD, create_organizer_cli
from tools.browser import ENGLISH, FRENCH, jpeg_file, register_on_page
from tools.photos import fixture_bytes

pytestmark = [pytest.mark.slow, pytest.mark.once]


def test_a_guest_joins_a_second_event_from_its_link_and_the_language_switch_keeps_the_code(
    clean_db: None,
    server: tuple[str, dict[str, str]],
    browser: Browser,
    playwright: Playwright,
    offsite: Offsite,
) -> None:
    base, env = server
    create_organizer_cli(env, username="org-joins")
    with httpx.Client(base_url=base, timeout=60) as c:
        token = c.post("/api/login", json={"login": "org-joins", "password": PASSWORD}).json()["access_token"]
        org = {"Authorization": f"Bearer {token}"}
        first = c.post("/api/events", json={"name": "Mariage"}, headers=org).json()
        second = c.post("/api/events", json={"name": "Brunch"}, headers=org).json()
        files = [("files", ("b.jpg", fixture_bytes("obama2.jpg")))]
        assert c.post(f"/api/events/{second['id']}/photos", files=files, headers=org).status_code == 202

    context = new_context(browser, offsite, **phone(playwright, FRENCH.locale))
    page = context.new_page()
    page.goto(f"{base}/e/{first['code']}")
    register_on_page(page, FRENCH, "invitee")
    page.get_by_label(FRENCH.selfie, exact=True).set_input_files(
        files=[jpeg_file("obama.jpg", fixture_bytes("obama.jpg"))]
    )
    expect(page.locator("#verdict [data-status=ready]")).to_contain_text(FRENCH.ready, timeout=60_000)

    # The second event's QR code (its join link): the event, and one tap to join it.
    page.goto(f"{base}{second['join_path']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Brunch")
    expect(page.locator("#event-facts")).to_contain_text("Organisé par org-joins.")
    expect(page.locator("form[action='/register']")).to_have_count(0)
    audit(page)
    screenshot(page, "fr-7-join")
    page.get_by_role("button", name="Rejoindre", exact=True).click()
    page.wait_for_url(re.compile(rf"/photos\?event={second['id']}$"))
    expect(page.locator("#event-filter")).to_contain_text("Photos de Brunch.")
    expect(page.locator("#erasure")).to_contain_text("Les photos de Brunch sont effacées le")
    expect(page.locator("#grid .grid li")).to_have_count(1, timeout=120_000)
    audit(page)
    screenshot(page, "fr-8-joined-photos")
    # Opening its link again goes straight to its photos.
    page.goto(f"{base}/e/{second['code']}")
    page.wait_for_url(re.compile(rf"/photos\?event={second['id']}$"))

    # Signed out, the FR / EN switch on an event's page keeps the event's code.
    visitor = new_context(browser, offsite, **phone(playwright, FRENCH.locale)).new_page()
    visitor.goto(f"{base}/?event={first['code']}")
    expect(visitor.get_by_label(FRENCH.event_code, exact=True)).to_have_value(first["code"])
    visitor.get_by_role("link", name="EN", exact=True).click()
    visitor.wait_for_url(f"{base}/?event={first['code']}")
    assert visitor.evaluate("document.documentElement.lang") == "en"
    expect(visitor.get_by_label(ENGLISH.event_code, exact=True)).to_have_value(first["code"])
    expect(visitor.get_by_role("heading", level=1)).to_have_text("Mariage")
    audit(visitor)
    visitor.get_by_role("link", name="FR", exact=True).click()
    visitor.wait_for_url(f"{base}/?event={first['code']}")
    expect(visitor.get_by_label(FRENCH.event_code, exact=True)).to_have_value(first["code"])
