"""The organizer's journey in Chromium against the real server: log in, create an event, its
QR code, upload 10 real photos with progress (surviving lost connections without sending a
photo twice), indexing progress reaching done, settings, deleting a photo and the event.
axe-core audits every page."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.web.conftest import Offsite, audit, new_context, screenshot
from tools.accounts import PASSWORD, create_organizer_cli
from tools.paths import FACES

pytestmark = pytest.mark.slow

PHOTOS = sorted(p for p in FACES.iterdir() if p.suffix in (".jpg", ".png"))[:10]


def _photo_count(base: str, event_id: str) -> int:
    with httpx.Client(base_url=base, timeout=30) as c:
        token = c.post("/api/login", json={"login": "boss", "password": PASSWORD}).json()["access_token"]
        answer = c.get(f"/api/events/{event_id}", headers={"Authorization": f"Bearer {token}"}).json()
    return sum(answer["photos"].values())


class FlakyNetwork:
    """Drops the first uploads' connections, as a bad event Wi-Fi does."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.sent = 0

    def route(self, route: Route) -> None:
        if route.request.method == "POST" and self.drops > 0:
            self.drops -= 1
            route.abort("connectionreset")
            return
        if route.request.method == "POST":
            self.sent += 1
        route.continue_()


def _log_in(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    audit(page)
    page.get_by_label("Nom d'utilisateur ou e-mail").fill("boss")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("main").get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{base}/organizer")


def test_an_organizer_runs_an_event_from_a_browser(
    clean_db: None, server: tuple[str, dict[str, str]], browser: Browser, offsite: Offsite
) -> None:
    base, env = server
    create_organizer_cli(env)
    context = new_context(browser, offsite, locale="fr-FR", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    _log_in(page, base)
    audit(page)

    page.get_by_label("Nom de l'événement").fill("Mariage de Léa")
    page.get_by_role("button", name="Créer l'événement").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mariage de Léa")
    code = page.locator(".code").get_attribute("data-code")
    assert code and page.locator(".qr svg").count() == 1
    event_id = page.url.rsplit("/", 1)[-1]
    with page.expect_download() as download:
        page.get_by_role("link", name="QR code (PNG)").click()
    assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert download.value.suggested_filename == f"{code}.png"

    # Ten photos, two connections lost on the way: each photo arrives once.
    network = FlakyNetwork(drops=2)
    page.route(f"**/api/events/{event_id}/photos", network.route)
    page.locator("#photo-files").set_input_files([str(p) for p in PHOTOS])
    expect(page.locator("#dropzone")).to_have_attribute("data-state", "done", timeout=120_000)
    expect(page.locator("#batch-status")).to_have_text("10 / 10")
    assert page.evaluate("document.getElementById('batch-progress').value") == page.evaluate(
        "document.getElementById('batch-progress').max"
    )
    assert network.sent == 10
    assert _photo_count(base, event_id) == 10

    # The same card dropped again: nothing is sent twice.
    page.locator("#photo-files").set_input_files([str(p) for p in PHOTOS])
    expect(page.locator("#upload-list li em", has_text="Déjà envoyée")).to_have_count(10)
    assert network.sent == 10

    # Indexing progress updates by itself until every photo is done.
    progress = page.locator("#progress")
    expect(progress).to_have_attribute("data-pending", "0", timeout=240_000)
    indexed = int(progress.get_attribute("data-indexed") or 0)
    failed = int(progress.get_attribute("data-failed") or 0)
    assert indexed + failed == 10 and indexed >= 9
    audit(page)
    page.set_viewport_size({"width": 412, "height": 915})  # what an organizer sees on a phone
    audit(page)
    screenshot(page, "fr-6-organizer-event")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Settings: close registration, keep the photos 45 days.
    page.get_by_role("button", name="Fermer les inscriptions").click()
    expect(page.get_by_text("Les inscriptions sont fermées.")).to_be_visible()
    page.get_by_label("Jours de conservation des photos après l'événement").fill("45")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_label("Jours de conservation des photos après l'événement")).to_have_value("45")

    # Delete a photo, then the event (its code must be typed to confirm).
    page.get_by_role("button", name=f"Supprimer {PHOTOS[0].name}").click()
    expect(page.locator("#progress")).to_have_attribute("data-indexed", str(indexed - 1))
    page.get_by_label(f"Saisissez {code} pour confirmer").fill("NOPE")
    page.get_by_role("button", name="Supprimer l'événement").click()
    expect(page.get_by_role("alert")).to_contain_text("Saisissez le code de l'événement")
    page.get_by_label(f"Saisissez {code} pour confirmer").fill(code)
    page.get_by_role("button", name="Supprimer l'événement").click()
    page.wait_for_url(f"{base}/organizer")
    expect(page.get_by_text(code)).to_have_count(0)
    context.close()
