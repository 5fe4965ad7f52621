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
    "Selfie",
    "Disponible",
    "Aucun visage trouvé : regardez l'objectif, en bonne lumière.",
    "Prêt",
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
    "Selfie",
    "Available",
    "No face found: face the camera in good light.",
    "Ready",
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
