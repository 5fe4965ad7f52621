"""Out-of-range input is a 422 naming the field, never a 500: ids and offsets beyond 64 bits,
dates at the edges of the calendar, names with nothing visible or with control characters."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import register

HUGE = [2**63, 2**64, 10**30, 0, -1]
ID_ROUTES = [
    ("get", "/api/events/{id}"),
    ("post", "/api/events/{id}/close"),
    ("post", "/api/events/{id}/open"),
    ("get", "/api/events/{id}/photos"),
    ("post", "/api/events/{id}/photos"),
    ("get", "/api/photos/{id}/thumbnail"),
    ("get", "/api/photos/{id}/original"),
]


@pytest.mark.parametrize(("method", "route"), ID_ROUTES)
def test_ids_beyond_64_bits_or_below_1_are_422(
    client: TestClient, org_headers: dict[str, str], method: str, route: str
) -> None:
    for value in HUGE:
        r = client.request(method, route.format(id=value), headers=org_headers)
        assert r.status_code == 422, (route, value, r.text)
        assert r.json()["error"]["code"] == "validation_error"
    assert client.request(method, route.format(id=2**63 - 1), headers=org_headers).status_code == 404


def test_offsets_and_event_filters_out_of_range_are_422(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any]
) -> None:
    photos = f"/api/events/{event['id']}/photos"
    assert client.get(photos, params={"offset": 2**63}, headers=org_headers).status_code == 422
    assert client.get(photos, params={"offset": 10**6}, headers=org_headers).status_code == 200
    guest = register(client, event["code"], "edgar").json()["access_token"]
    for value in HUGE:
        r = client.get(
            "/api/my-photos", params={"event_id": value}, headers={"Authorization": f"Bearer {guest}"}
        )
        assert r.status_code == 422, value


@pytest.mark.parametrize(
    "when",
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-12:00",
        "1969-12-31T23:59:59Z",
        "2201-01-01T00:00:00Z",
    ],
)
def test_event_dates_at_the_edges_of_the_calendar_are_422(
    client: TestClient, org_headers: dict[str, str], when: str
) -> None:
    for field in ("starts_at", "ends_at"):
        r = client.post("/api/events", json={"name": "Edge", field: when}, headers=org_headers)
        assert r.status_code == 422, (field, when, r.text)
        assert field in r.text


@pytest.mark.parametrize(
    "name",
    ["   ", "\u202e", "\u200b\u200b", "\u2066\u2069", "\t\n", "Summer\u202eytraP", "Line\nbreak", "\x07bell"],
)
def test_event_names_with_nothing_visible_or_with_control_characters_are_422(
    client: TestClient, org_headers: dict[str, str], name: str
) -> None:
    r = client.post("/api/events", json={"name": name}, headers=org_headers)
    assert r.status_code == 422, repr(name)


def test_a_display_name_with_nothing_visible_is_422(client: TestClient, event: dict[str, Any]) -> None:
    assert register(client, event["code"], "ivy", display_name="\u200b ").status_code == 422
    assert (
        register(client, event["code"], "ivy", display_name="  Ivy ✨ ").json()["user"]["display_name"]
        == "Ivy ✨"
    )
