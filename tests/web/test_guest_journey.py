"""The guest's whole journey on a phone (Pixel 7), in French then in English, in Chromium
against the real server: the QR code's link, registration (every error at once, then live
availability), a refused selfie then a good one, photos appearing without a reload, one photo
full size (previous / next, swipe, share the file), "not me" and its undo, download all, and
the account page (the selfie's deletion asked first, a new password). axe-core audits every
page; every target of the main screens is 24 x 24 CSS px at least."""

from __future__ import annotations

import io
import zipfile

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Playwright, Route, expect

from tests.web.conftest import (
    PAGE_BUDGET,
    Offsite,
    audit,
    first_load_weight,
    new_context,
    phone,
    screenshot,
    small_targets,
    transferred,
)
from tools.accounts import PASSWORD, create_organizer_cli
from tools.browser import ENGLISH, FRENCH, SHARE_SHEET, SWIPE, Words, jpeg_file, register_on_page
from tools.photos import fixture_bytes, side_by_side

pytestmark = [pytest.mark.slow, pytest.mark.once]

NEW_PASSWORD = "purple lantern orchestra"
#: What the guest's pages say in each language beyond ``tools.browser.Words``.
SAYS = {
    "fr": {
        "errors": "4 champs à corriger ci-dessous.",
        "short": "3 caractères : il en faut au moins 8.",
        "selfie_ok": "Selfie validé, vos photos apparaîtront ici.",
        "previous": "Précédente",
        "next": "Suivante",
        "share": "Partager",
        "removed": "Photo retirée.",
        "undo": "Annuler",
        "delete_selfie": "Supprimer mon selfie",
        "keep_selfie": "Garder mon selfie",
        "current": "Mot de passe actuel",
        "new": "Nouveau mot de passe",
        "again": "Confirmez le nouveau mot de passe",
        "change": "Changer mon mot de passe",
        "differ": "Le nouveau mot de passe et sa confirmation ne correspondent pas.",
        "changed": "Votre mot de passe a été modifié.",
    },
    "en": {
        "errors": "4 fields to correct below.",
        "short": "3 characters: use at least 8.",
        "selfie_ok": "Selfie OK, your photos will appear here.",
        "previous": "Previous",
        "next": "Next",
        "share": "Share",
        "removed": "Photo removed.",
        "undo": "Undo",
        "delete_selfie": "Delete my selfie",
        "keep_selfie": "Keep my selfie",
        "current": "Current password",
        "new": "New password",
        "again": "New password again",
        "change": "Change my password",
        "differ": "The new password and its confirmation differ.",
        "changed": "Your password is changed.",
    },
}


def _org_name(event_name: str) -> str:
    return "org-" + event_name.lower().replace(" ", "-")


def _organizer_event(base: str, env: dict[str, str], name: str) -> tuple[dict[str, str], dict[str, object]]:
    create_organizer_cli(env, username=_org_name(name))
    with httpx.Client(base_url=base, timeout=30) as c:
        login = {"login": _org_name(name), "password": PASSWORD}
        headers = {"Authorization": "Bearer " + c.post("/api/login", json=login).json()["access_token"]}
        event = c.post("/api/events", json={"name": name}, headers=headers).json()
    return headers, event


def _upload(base: str, headers: dict[str, str], event_id: object, photos: dict[str, bytes]) -> None:
    files = [("files", (name, data)) for name, data in photos.items()]
    with httpx.Client(base_url=base, timeout=60) as c:
        answer = c.post(f"/api/events/{event_id}/photos", files=files, headers=headers).json()
    assert len(answer["accepted"]) == len(photos), answer


def _selfie(page: Page, words: Words, name: str) -> None:
    page.get_by_label(words.selfie, exact=True).set_input_files(files=[jpeg_file(name, fixture_bytes(name))])


@pytest.mark.parametrize("words", [FRENCH, ENGLISH], ids=["fr-FR", "en-US"])
def test_a_guest_finds_their_photos_with_only_a_phone(
    clean_db: None,
    server: tuple[str, dict[str, str]],
    browser: Browser,
    playwright: Playwright,
    offsite: Offsite,
    words: Words,
) -> None:
    base, env = server
    lang = words.locale[:2]
    org, event = _organizer_event(base, env, f"Gala {lang}")
    context = new_context(browser, offsite, **phone(playwright, words.locale))
    page = context.new_page()

    # The QR code's link opens the event with its code filled in.
    page.goto(f"{base}/e/{event['code']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(str(event["name"]))
    expect(page.get_by_label(words.event_code, exact=True)).to_have_value(str(event["code"]))
    assert page.evaluate("document.documentElement.lang") == lang
    audit(page)
    assert small_targets(page) == []
    screenshot(page, f"{lang}-1-register")

    # On a 390x844 screen, a form with every field wrong: each error at once, tied to its
    # field, the focus on the first, what was typed kept (not the password), the button within
    # reach; the password's length is told while it is typed.
    says = SAYS[lang]
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_label(words.username, exact=True).fill("a")
    page.get_by_label(words.email, exact=True).fill("nope")
    page.get_by_label(words.password, exact=True).press_sequentially("abc")
    expect(page.locator("#password-meter")).to_have_text(says["short"])
    page.locator("form[action='/register'] button[type=submit]").click()
    expect(page.locator("#form-errors")).to_have_text(says["errors"])
    for name in ("username", "email", "password", "accept_face_processing"):
        expect(page.locator(f"#{name}-error")).to_be_visible()
        described = page.locator(f"[aria-describedby~='{name}-error']")
        expect(described).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label(words.username, exact=True)).to_be_focused()
    expect(page.get_by_label(words.username, exact=True)).to_have_value("a")
    expect(page.get_by_label(words.email, exact=True)).to_have_value("nope")
    expect(page.get_by_label(words.password, exact=True)).to_have_value("")
    submit = page.locator("form[action='/register'] button[type=submit]")
    submit.scroll_into_view_if_needed()
    expect(submit).to_be_in_viewport()
    box = submit.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    audit(page)
    screenshot(page, f"{lang}-1b-register-errors")
    page.set_viewport_size(playwright.devices["Pixel 7"]["viewport"])

    register_on_page(page, words, f"alice_{lang}", check_availability=True)

    # A photo without a face is refused, with the reason in the guest's language.
    audit(page)
    _selfie(page, words, "mask_blue.jpg")
    expect(page.locator("#verdict [data-status=rejected]")).to_contain_text(words.no_face, timeout=60_000)
    screenshot(page, f"{lang}-2-selfie-refused")
    _selfie(page, words, "obama.jpg")
    expect(page.locator("#verdict [data-status=ready]")).to_contain_text(words.ready, timeout=60_000)
    expect(page.locator("#verdict [data-status=ready]")).to_contain_text(says["selfie_ok"])
    expect(page.locator("#selfie-form button")).to_have_count(0)  # one action: the label
    audit(page)
    assert small_targets(page) == []
    screenshot(page, f"{lang}-2b-selfie-ok")

    # The photos page waits, then fills in as the organizer's photos are indexed: no reload.
    page.goto(f"{base}/photos")
    expect(page.locator("#grid .empty")).to_contain_text(words.still_looking)
    expect(page.get_by_role("link", name=words.download_all)).to_have_count(0)
    audit(page)
    screenshot(page, f"{lang}-3-photos-empty")
    page.evaluate("window.notReloaded = true")
    photos = {
        "a2.jpg": fixture_bytes("obama2.jpg"),
        "a3.jpg": fixture_bytes("obama3.jpg"),
        "ab.jpg": side_by_side("obama3.jpg", "biden.jpg"),
        "b.jpg": fixture_bytes("biden.jpg"),
    }
    _upload(base, org, event["id"], photos)
    tiles = page.locator("#grid .grid li")
    expect(tiles).to_have_count(3, timeout=120_000)
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("#grid .grid img").first).to_have_js_property("complete", True)
    audit(page)
    assert small_targets(page) == []
    screenshot(page, f"{lang}-4-photos")

    # A full-size view: previous / next (and a swipe) in the grid's order, its download, and
    # its share button, which hands the file itself to the phone's share sheet.
    ids = [
        int(str(href).rsplit("/", 1)[1])
        for href in tiles.locator("a").evaluate_all("(a) => a.map((e) => e.getAttribute('href'))")
    ]
    page.add_init_script(SHARE_SHEET)
    tiles.first.locator("a").click()
    expect(page.locator("img.full")).to_be_visible()
    expect(page.get_by_role("link", name=says["previous"])).to_have_count(0)
    expect(page.get_by_role("link", name=words.download_all)).to_have_count(0)
    expect(page.locator(f"a#download[download='photo-{ids[0]}.jpg']")).to_be_visible()
    page.get_by_role("button", name=says["share"]).click()
    shared = None
    for _ in range(50):  # polled from here: the page's CSP forbids wait_for_function's eval
        if shared := page.evaluate("window.shared"):
            break
        page.wait_for_timeout(100)
    assert shared, "nothing was shared"
    assert shared[0]["name"] == f"photo-{ids[0]}.jpg" and shared[0]["type"] == "image/jpeg", shared
    assert shared[0]["size"] > 10_000
    audit(page)
    assert small_targets(page) == []
    page.evaluate(SWIPE, -150)  # to the left: the next photo
    page.wait_for_url(f"{base}/photos/{ids[1]}")
    expect(page.get_by_role("link", name=says["previous"])).to_be_visible()
    page.evaluate(SWIPE, 150)
    page.wait_for_url(f"{base}/photos/{ids[0]}")
    page.get_by_role("link", name=says["next"]).click()
    page.wait_for_url(f"{base}/photos/{ids[1]}")
    page.get_by_role("link", name=says["next"]).click()
    page.wait_for_url(f"{base}/photos/{ids[2]}")
    expect(page.get_by_role("link", name=says["next"])).to_have_count(0)  # the last one
    expect(page.locator("img.full")).to_have_js_property("complete", True)
    screenshot(page, f"{lang}-4b-photo")

    # "Not me" on the full-size view: the photo goes, "Photo removed. Undo" on the next page brings
    # it back; used again, it stays out.
    page.get_by_role("button", name=words.not_me).click()
    page.wait_for_url(f"{base}/photos/{ids[1]}?removed={ids[2]}")
    expect(page.get_by_role("status")).to_contain_text(says["removed"])
    audit(page)
    assert small_targets(page) == []
    screenshot(page, f"{lang}-4c-removed")
    page.get_by_role("button", name=says["undo"]).click()
    page.wait_for_url(f"{base}/photos?restored=1")
    expect(page.locator("#grid .grid li")).to_have_count(3, timeout=60_000)
    page.goto(f"{base}/photos/{ids[2]}")
    page.get_by_role("button", name=words.not_me).click()
    page.wait_for_url(f"{base}/photos/{ids[1]}?removed={ids[2]}")
    page.goto(f"{base}/photos")
    expect(page.locator("#grid .grid li")).to_have_count(2)

    # Download all: one zip with the two photos.
    with page.expect_download() as download:
        page.get_by_role("link", name=words.download_all).click()
    path = download.value.path()
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        assert len([n for n in archive.namelist() if not n.endswith("/")]) == 2

    # The session survives a browser restart: a new context with the same cookies.
    state = context.storage_state()
    context.close()
    context = new_context(browser, offsite, **phone(playwright, words.locale), storage_state=state)
    page = context.new_page()
    page.goto(f"{base}/account")
    expect(page.get_by_text(f"alice_{lang}")).to_be_visible()
    audit(page)
    assert small_targets(page) == []
    screenshot(page, f"{lang}-5-account")
    page.goto(f"{base}/privacy")
    audit(page)

    # Deleting the selfie is asked first (a page of its own: no script needed); kept here.
    page.goto(f"{base}/account")
    page.get_by_role("link", name=says["delete_selfie"]).click()
    page.wait_for_url(f"{base}/account/delete-selfie")
    expect(page.get_by_role("button", name=says["delete_selfie"])).to_be_visible()
    audit(page)
    page.get_by_role("link", name=says["keep_selfie"]).click()
    page.wait_for_url(f"{base}/account")

    # A new password: the confirmation must match; the session goes on.
    page.get_by_label(says["current"], exact=True).nth(1).fill(PASSWORD)
    page.get_by_label(says["new"], exact=True).fill(NEW_PASSWORD)
    page.get_by_label(says["again"], exact=True).fill(NEW_PASSWORD + " x")
    page.get_by_role("button", name=says["change"]).click()
    expect(page.locator("#confirm_password-error")).to_have_text(says["differ"])
    expect(page.get_by_label(says["again"], exact=True)).to_be_focused()
    audit(page)
    screenshot(page, f"{lang}-6-password-mismatch")
    page.get_by_label(says["current"], exact=True).nth(1).fill(PASSWORD)
    page.get_by_label(says["new"], exact=True).fill(NEW_PASSWORD)
    page.get_by_label(says["again"], exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name=says["change"]).click()
    expect(page.get_by_role("status")).to_contain_text(says["changed"])

    # Deleting the account: the password again, then nothing is left signed in.
    page.get_by_label(words.password, exact=True).fill(NEW_PASSWORD)
    page.locator("form[action='/account/delete'] button").click()
    expect(page.get_by_role("status")).to_be_visible()
    audit(page)
    page.goto(f"{base}/photos")
    page.wait_for_url(f"{base}/login?next=%2Fphotos")
    audit(page)
    assert small_targets(page) == []
    context.close()


def test_guest_pages_are_light_work_with_the_keyboard_and_render_before_any_script(
    clean_db: None,
    server: tuple[str, dict[str, str]],
    browser: Browser,
    playwright: Playwright,
    offsite: Offsite,
) -> None:
    base, env = server
    _org, event = _organizer_event(base, env, "Weights")
    context = new_context(browser, offsite, **phone(playwright, "fr-FR"))
    page = context.new_page()
    weights = {}
    for name, path in (("code", "/"), ("register", f"/?event={event['code']}")):
        page.goto(f"{base}{path}", wait_until="networkidle")
        weights[name] = transferred(page)
        audit(page)
        assert small_targets(page) == []
        page.context.clear_cookies()
    page.goto(f"{base}/?event=NOPE-2345")  # a wrong code: the reason, in the form
    expect(page.get_by_role("alert")).to_contain_text("Aucun événement n'a ce code")
    audit(page)
    # Registration with the keyboard only: the first Tab reaches the skip link, Space ticks the
    # consent, Enter submits.
    page.goto(f"{base}/?event={event['code']}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.get_by_label(FRENCH.username, exact=True).fill("weigher")
    page.keyboard.press("Tab")
    page.keyboard.type("weigher@example.com")
    page.locator("#consent").focus()
    page.keyboard.press("Space")
    page.get_by_label(FRENCH.password, exact=True).fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/selfie")
    for name in ("selfie", "photos", "account"):
        weights[name] = first_load_weight(context, f"{base}/{name}")  # nothing cached
    print("guest pages, bytes transferred on first load (images aside):", weights)
    assert all(0 < weight < PAGE_BUDGET for weight in weights.values()), weights

    # Without JavaScript the forms are there, labelled, and usable.
    no_script = new_context(browser, offsite, **phone(playwright, "fr-FR"), java_script_enabled=False)
    page = no_script.new_page()
    page.goto(f"{base}/e/{event['code']}")
    expect(page.get_by_label(FRENCH.event_code, exact=True)).to_have_value(str(event["code"]))
    expect(page.get_by_label(FRENCH.username, exact=True)).to_be_visible()
    context.close()
    no_script.close()


def test_the_selfie_is_downscaled_in_the_browser_before_it_is_sent(
    clean_db: None,
    server: tuple[str, dict[str, str]],
    browser: Browser,
    playwright: Playwright,
    offsite: Offsite,
) -> None:
    base, env = server
    _org, event = _organizer_event(base, env, "Big selfie")
    big = io.BytesIO()
    original = Image.open(io.BytesIO(fixture_bytes("obama.jpg"))).convert("RGB")
    size = (4000, round(4000 * original.height / original.width))
    original.resize(size, Image.Resampling.LANCZOS).save(big, "JPEG", quality=92)
    sent: list[bytes] = []

    def keep(route: Route) -> None:
        sent.append(route.request.post_data_buffer or b"")
        route.continue_()

    context = new_context(browser, offsite, **phone(playwright, "fr-FR"))
    page = context.new_page()
    page.route("**/api/upload-selfie", keep)
    page.goto(f"{base}/e/{event['code']}")
    register_on_page(page, FRENCH, "bigphone")
    page.get_by_label(FRENCH.selfie, exact=True).set_input_files(files=[jpeg_file("big.jpg", big.getvalue())])
    expect(page.locator("#verdict [data-status=ready]")).to_be_visible(timeout=60_000)
    assert len(sent) == 1
    jpeg = sent[0][sent[0].index(b"\xff\xd8") :]
    received = Image.open(io.BytesIO(jpeg))
    print(f"selfie chosen: {size}, {len(big.getvalue())} bytes; sent: {received.size}, {len(sent[0])} bytes")
    assert max(received.size) == 1600
    assert abs(received.size[0] / received.size[1] - size[0] / size[1]) < 0.01
    context.close()
