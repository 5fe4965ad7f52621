"""The privacy policy is a page in French and in English that states what this server's
settings do, names the controller and contact the operator configured, and is the same text
``GET /api/privacy`` returns."""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.accounts.privacy import POLICY_VERSION
from app.core.config import get_settings


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    settings = get_settings()
    monkeypatch.setattr(settings, "privacy_controller", "Photo Club Lyon, 3 rue Neuve, Lyon")
    monkeypatch.setattr(settings, "privacy_contact", "privacy@photoclub.example")
    yield


def _page(client: TestClient, language: str) -> str:
    r = client.get("/privacy", headers={"Accept-Language": language})
    assert r.status_code == 200
    return html.unescape(r.text)


def test_the_policy_is_a_page_in_french_and_in_english_with_the_controller(
    client: TestClient, configured: None
) -> None:
    french, english = _page(client, "fr"), _page(client, "en")
    assert '<html lang="fr">' in french and "<h2>Ce qui est conservé</h2>" in french
    assert '<html lang="en">' in english and "<h2>What is stored</h2>" in english
    for page in (french, english):
        assert "Photo Club Lyon, 3 rue Neuve, Lyon" in page and "privacy@photoclub.example" in page
        assert "# " not in page and "**" not in page  # no raw Markdown
        assert POLICY_VERSION in page
    # The server's defaults: the local engine, selfie images deleted, 30 days, no mail.
    assert "par le moteur de reconnaissance de ce serveur" in french and "Azure" not in french
    assert "son image est supprimée dès que" in french
    assert "effacés 30 jours après la fin de l'événement" in french
    assert "ce serveur n'envoie aucun e-mail" in french
    assert "by this server's own face engine" in english and "Azure" not in english

    policy = client.get("/api/privacy", headers={"Accept-Language": "en"}).json()
    assert policy["version"] == POLICY_VERSION and policy["language"] == "en"
    assert policy["controller"] == "Photo Club Lyon, 3 rue Neuve, Lyon"
    assert policy["contact"] == "privacy@photoclub.example"
    assert "What is stored" in policy["text"] and "<" not in policy["text"]
    assert client.get("/api/privacy").json()["language"] == "fr"


def test_the_policy_states_what_the_settings_do(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "face_provider", "azure")
    monkeypatch.setattr(settings, "azure_face_endpoint", "https://westeurope.api.cognitive.microsoft.com/")
    monkeypatch.setattr(settings, "selfie_keep_image", True)
    monkeypatch.setattr(settings, "event_retention_days", 90)
    monkeypatch.setattr(settings, "smtp_url", "smtp://user:secret@mail.example:587")
    english = _page(client, "en")
    assert "Microsoft's Azure Face service (westeurope.api.cognitive.microsoft.com)" in english
    assert "its image is kept on this server for as long as the selfie" in english
    assert "erased 90 days after the end of the event" in english
    assert "tell you that new photos of you have arrived" in english and "secret" not in english
    assert "The operator of this server has not named the controller" in english
    policy = client.get("/api/privacy").json()
    assert policy["controller"] is None and policy["contact"] is None
    assert "Azure Face" in policy["text"] and "90 jours" in policy["text"]
