"""Chromium as the browser tests and benchmarks drive it (Debian's, never one Playwright
downloads), and the guest's pages as a guest fills them in: the words each language shows,
and the registration form."""

from __future__ import annotations

from dataclasses import dataclass

from playwright.sync_api import FilePayload, Page, expect

from tools.accounts import PASSWORD

CHROMIUM = "/usr/bin/chromium"
#: The hosts the pages may reach: everything else is aborted.
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Chromium stays quiet: no update checks, sync, or lookups of Google's hosts on this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-breakpad",
]


@dataclass(frozen=True)
class Words:
    """What the guest's pages show in one language: labels, buttons and verdicts."""

    locale: str
    event_code: str
    username: str
    email: str
    password: str
    selfie: str
    available: str
    no_face: str
    ready: str
    not_me: str
    download_all: str
    still_looking: str


FRENCH = Words(
    "fr-FR",
    "Code de l'événement",
    "Nom d'utilisateur",
    "E-mail",
    "Mot de passe",
    "Prendre mon selfie",
    "Disponible",
    "Aucun visage détecté : regardez l'objectif, dans un endroit bien éclairé.",
    "Selfie validé",
    "Ce n'est pas moi",
    "Tout télécharger",
    "Nous cherchons encore",
)
ENGLISH = Words(
    "en-US",
    "Event code",
    "Username",
    "Email",
    "Password",
    "Take my selfie",
    "Available",
    "No face found: face the camera in good light.",
    "Selfie OK",
    "Not me",
    "Download all",
    "We are still looking",
)


def register_on_page(page: Page, words: Words, username: str, *, check_availability: bool = False) -> None:
    """Fill in and send the registration form the page shows; lands on the selfie page."""
    page.get_by_label(words.username, exact=True).fill(username)
    if check_availability:
        expect(page.locator("#username-availability")).to_have_text(words.available)
    page.get_by_label(words.email, exact=True).fill(f"{username}@example.com")
    page.get_by_label(words.password, exact=True).fill(PASSWORD)
    page.locator("#consent").check()
    page.locator("form[action='/register'] button[type=submit]").click()
    page.wait_for_url("**/selfie")


def jpeg_file(name: str, data: bytes) -> FilePayload:
    """A JPEG as a file input receives it (``set_input_files``)."""
    return {"name": name, "mimeType": "image/jpeg", "buffer": data}


# The phone's share sheet, as Chromium on a desktop has none: what `navigator.share` was given.
SHARE_SHEET = """
window.shared = null;
Object.defineProperty(navigator, "canShare", {
    configurable: true,
    value: (data) => !!data && Array.isArray(data.files) && data.files.every((f) => f instanceof File),
});
Object.defineProperty(navigator, "share", {
    configurable: true,
    value: async (data) => {
        window.shared = data.files.map((f) => ({ name: f.name, type: f.type, size: f.size }));
    },
});
"""
# A swipe of ``dx`` pixels across the full-size photo, as a finger does it.
SWIPE = """(dx) => {
    const img = document.getElementById("photo");
    const box = img.getBoundingClientRect();
    const x = box.left + box.width / 2, y = box.top + box.height / 2;
    const touch = (at) => new Touch({ identifier: 1, target: img, clientX: at, clientY: y });
    const start = { touches: [touch(x)], changedTouches: [touch(x)], bubbles: true };
    img.dispatchEvent(new TouchEvent("touchstart", start));
    const end = { touches: [], changedTouches: [touch(x + dx)], bubbles: true };
    img.dispatchEvent(new TouchEvent("touchend", end));
}"""
