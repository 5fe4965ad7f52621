"""Someone holding the code could upload another person's face: selfie changes are limited
per day and shown to the organizer, who can remove the guest."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import get_settings
from tests.helpers import bearer, register, selfie_verdict
from tools.photos import fixture_bytes


def _upload(client: TestClient, headers: dict[str, str]) -> Any:
    return client.post(
        "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=headers
    )


def test_selfie_changes_are_limited_per_day_and_shown_to_the_organizer(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "selfie_changes_per_day", 2)
    sneaky = bearer(register(client, event["code"], "sneaky"))
    honest = bearer(register(client, event["code"], "honest"))
    # The first selfie, then 2 changes: each counts once the face check accepted it.
    verdicts = [selfie_verdict(client, sneaky, fixture_bytes("obama.jpg"))["status"] for _ in range(3)]
    assert verdicts == ["ready"] * 3
    refused = _upload(client, sneaky).json()["error"]
    assert refused["code"] == "selfie_changes_exhausted" and "2 times a day" in refused["message"]
    assert _upload(client, honest).status_code == 202
    guests = client.get(f"/api/events/{event['id']}/guests", headers=org_headers).json()["guests"]
    by_name = {g["username"]: g for g in guests}
    assert by_name["sneaky"]["selfie_changes"] == 2 and by_name["sneaky"]["last_selfie_change_at"]
    assert by_name["honest"]["selfie_changes"] == 0 and by_name["honest"]["selfie_status"] == "checking"
    # The organizer removes the guest; only their own events' guests are listed to an organizer.
    user_id = by_name["sneaky"]["user_id"]
    assert (
        client.delete(f"/api/events/{event['id']}/guests/{user_id}", headers=org_headers).status_code == 204
    )
    names = {
        g["username"]
        for g in client.get(f"/api/events/{event['id']}/guests", headers=org_headers).json()["guests"]
    }
    assert names == {"honest"}
    assert client.get(f"/api/events/{event['id']}/guests", headers=honest).status_code == 403
