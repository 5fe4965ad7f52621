"""The organizer's journey in Chromium against the real server: log in, create an event, its
QR code and the card to print, upload 10 real photos with progress (surviving lost connections
without sending a photo twice, skipping a file that is not an image), indexing progress
reaching done in the grid of thumbnails, the dashboard on a phone, settings, deleting a photo
once confirmed, the events with their counts, and deleting the event. axe-core audits every
page; every target is 24 x 24 CSS px at least; the dashboard's first load weighs under the budget."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.web.conftest import (
    PAGE_BUDGET,
    Offsite,
    audit,
    first_load_weight,
    new_context,
    screenshot,
    small_targets,
)
from tools.accounts import PASSWORD, create_organizer_cli
from tools.paths import FACES

pytestmark = [pytest.mark.slow, pytest.mark.once]

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
    assert small_targets(page) == []
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("main").get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{base}/organizer")


def _pages_printed(page: Page, paper: str) -> int:
    pdf = page.pdf(format=paper, print_background=True)
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf))


def _leaving_is_guarded(page: Page) -> bool:
    """Whether the page asks before it is left (its ``beforeunload`` handler cancels)."""
    return bool(
        page.evaluate(
            "() => { const e = new Event('beforeunload', {cancelable: true});"
            " window.dispatchEvent(e); return e.defaultPrevented; }"
        )
    )


def _wider_than(page: Page, width: int) -> list[str]:
    """The elements that reach past ``width`` pixels inside a parent that does not (what overflows)."""
    return list(
        page.evaluate(
            """(width) => [...document.querySelectorAll("body *")]
              .filter((e) => e.getBoundingClientRect().right > width + 0.5
                && e.parentElement.getBoundingClientRect().right <= width + 0.5)
              .slice(0, 8)
              .map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
                + "." + [...e.classList].join(".") + " " + Math.round(e.getBoundingClientRect().right))""",
            width,
        )
    )


def test_an_organizer_runs_an_event_from_a_browser(
    clean_db: None, server: tuple[str, dict[str, str]], browser: Browser, offsite: Offsite, tmp_path: Path
) -> None:
    base, env = server
    create_organizer_cli(env)
    context = new_context(browser, offsite, locale="fr-FR", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    _log_in(page, base)
    audit(page)
    assert small_targets(page) == []

    page.get_by_label("Nom de l'événement").fill("Mariage de Léa")
    page.get_by_role("button", name="Créer l'événement").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mariage de Léa")
    code = page.locator(".code").get_attribute("data-code")
    assert code and page.locator(".qr svg").count() == 1
    event_id = page.url.rsplit("/", 1)[-1]
    with page.expect_download() as download:
        page.get_by_role("link", name="Code QR (PNG)").click()
    assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert download.value.suggested_filename == f"{code}.png"

    # The card to print: name, code, QR code, how to join; one page on A4 and on Letter.
    page.get_by_role("link", name="Carte à imprimer").click()
    page.wait_for_url(f"{base}/organizer/events/{event_id}/card")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mariage de Léa")
    expect(page.locator(".card-code")).to_contain_text(str(code))
    expect(page.get_by_role("img", name="Code QR de l'événement Mariage de Léa")).to_be_visible()
    expect(page.locator(".card-how")).to_have_text(
        f"Scannez le code QR, ou rendez-vous sur {base} et saisissez le code de l'événement."
    )
    assert page.evaluate("document.querySelector('.card-qr').naturalWidth") > 0
    audit(page)
    assert small_targets(page) == []
    screenshot(page, "fr-organizer-card")
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.get_by_role("button", name="Imprimer")).to_be_hidden()
    assert _pages_printed(page, "A4") == 1 and _pages_printed(page, "Letter") == 1
    page.emulate_media(media="screen")
    page.go_back()

    # Ten photos and a note, two connections lost on the way: each photo arrives once, the
    # note is named as skipped, and leaving the page asks first while photos are on their way.
    note = tmp_path / "notes.txt"
    note.write_text("the playlist")
    network = FlakyNetwork(drops=2)
    page.route(f"**/api/events/{event_id}/photos", network.route)
    page.locator("#photo-files").set_input_files([str(p) for p in PHOTOS] + [str(note)])
    expect(page.locator("#batch-skipped")).to_have_text(
        "1 fichier ignoré : ce n'est pas une image (notes.txt)."
    )
    assert _leaving_is_guarded(page)
    expect(page.locator("#dropzone")).to_have_attribute("data-state", "done", timeout=120_000)
    expect(page.locator("#batch-status")).to_have_text("10 / 10")
    expect(page.locator("#batch-count")).to_have_text("10 / 10 photos")
    expect(page.locator("#batch-done")).to_have_text("10 photos envoyées.")
    expect(page.locator("#batch-eta")).to_have_text("")
    assert not _leaving_is_guarded(page)
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
    # The grid was empty when the page loaded: the poll brought each photo, then its thumbnail.
    expect(page.locator("#photos-range")).to_have_text("Photos 1\u201310 sur 10")
    expect(page.locator("#photo-grid li")).to_have_count(10)
    expect(page.locator("#photo-grid img")).to_have_count(indexed)
    page.locator("#photos").scroll_into_view_if_needed()
    expect(page.locator("#photo-grid img").first).to_have_js_property("complete", True)
    assert page.evaluate("document.querySelector('#photo-grid img').naturalWidth") > 0
    audit(page)
    assert small_targets(page) == []
    screenshot(page, "fr-organizer-dashboard-grid")
    weight = first_load_weight(context, f"{base}/organizer/events/{event_id}")  # organizer.js too
    print("organizer's dashboard, bytes transferred on first load (images aside):", weight)
    assert 0 < weight < PAGE_BUDGET
    page.set_viewport_size({"width": 412, "height": 915})  # what an organizer sees on a phone
    audit(page)
    assert small_targets(page) == []
    screenshot(page, "fr-6-organizer-event")
    page.set_viewport_size({"width": 390, "height": 844})  # nothing wider than the phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, _wider_than(page, 390)
    page.set_viewport_size({"width": 1280, "height": 900})

    # Settings: close registration, keep the photos 45 days.
    page.get_by_role("button", name="Fermer les inscriptions").click()
    expect(page.get_by_text("Les inscriptions sont fermées.")).to_be_visible()
    expect(page.get_by_text("Inscriptions fermées : les invités gardent leurs photos.")).to_be_visible()
    page.get_by_label("Jours de conservation des photos après l'événement").fill("45")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_text("Durée de conservation enregistrée.")).to_be_visible()
    expect(page.get_by_label("Jours de conservation des photos après l'événement")).to_have_value("45")

    # Delete a photo once the page listing the ticked ones confirmed it.
    page.get_by_label(PHOTOS[0].name, exact=True).check()
    page.get_by_role("button", name="Supprimer les photos cochées").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Supprimer 1 photo ?")
    expect(page.locator(".chosen li")).to_have_count(1)
    audit(page)
    assert small_targets(page) == []
    screenshot(page, "fr-organizer-delete-photos")
    page.get_by_role("button", name="Supprimer 1 photo").click()
    expect(page.locator("#photos-done")).to_have_text("1 photo supprimée.")
    expect(page.locator("#progress")).to_have_attribute("data-indexed", str(indexed - 1))
    expect(page.locator("#photos-range")).to_have_text("Photos 1\u20139 sur 9")

    # The events with their counts.
    page.goto(f"{base}/organizer")
    row = page.locator(f'li[data-event="{event_id}"]')
    expect(row).to_contain_text("9 photos")
    expect(row).to_contain_text("0 invité")
    audit(page)
    assert small_targets(page) == []
    screenshot(page, "fr-organizer-events")

    # Delete the event (its code must be typed to confirm).
    page.goto(f"{base}/organizer/events/{event_id}")
    page.get_by_label(f"Saisissez {code} pour confirmer").fill("NOPE")
    page.get_by_role("button", name="Supprimer l'événement").click()
    expect(page.get_by_role("alert")).to_contain_text("Saisissez le code de l'événement")
    page.get_by_label(f"Saisissez {code} pour confirmer").fill(code)
    page.get_by_role("button", name="Supprimer l'événement").click()
    page.wait_for_url(f"{base}/organizer")
    expect(page.get_by_text(code)).to_have_count(0)
    context.close()
