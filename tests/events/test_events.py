"""Event codes, organizer event management, joining another event."""

from __future__ import annotations

import re
import subprocess
import sys

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.events.service import CODE_ALPHABET, generate_code
from tests.helpers import login, make_event, make_organizer, register
from tools.accounts import PASSWORD


def test_generated_codes_are_readable_and_free_of_ambiguous_characters() -> None:
    for name in ["Summer Party 2026", "Le Bal", "Fête de l'été", "2026", "!!!"]:
        code = generate_code(name)
        prefix, suffix = code.split("-")
        assert re.fullmatch(r"[A-Z]{1,8}", prefix)
        assert len(suffix) == 8 and set(suffix) <= set(CODE_ALPHABET)
        assert not set(suffix) & set("01OIL")
    assert generate_code("Summer Party").startswith("SUMMER-")
    assert generate_code("Fête de l'été").startswith("FETE-")


def test_organizer_creates_an_event_with_a_generated_code(
    client: TestClient, org_headers: dict[str, str]
) -> None:
    r = client.post(
        "/api/events",
        json={
            "name": "Summer Party",
            "starts_at": "2026-07-01T18:00:00Z",
            "ends_at": "2026-07-02T02:00:00+02:00",
        },
        headers=org_headers,
    )
    assert r.status_code == 201
    body = r.json()
    assert body["code"].startswith("SUMMER-")
    assert body["is_open"] is True
    assert body["ends_at"].startswith("2026-07-02T00:00:00")


def test_event_end_before_start_is_refused(client: TestClient, org_headers: dict[str, str]) -> None:
    r = client.post(
        "/api/events",
        json={"name": "X", "starts_at": "2026-07-02T00:00:00Z", "ends_at": "2026-07-01T00:00:00Z"},
        headers=org_headers,
    )
    assert r.status_code == 422


def test_check_event_code_returns_the_public_info(client: TestClient, org_headers: dict[str, str]) -> None:
    event = make_event(client, org_headers, "Gala")
    r = client.post("/api/check-event-code", json={"code": f"  {event['code'].lower()}\t"})
    assert r.status_code == 200
    assert r.json() == {
        "valid": True,
        "event": {
            "id": event["id"],
            "code": event["code"],
            "name": "Gala",
            "starts_at": None,
            "ends_at": None,
        },
    }


def test_check_event_code_unknown_is_404_and_closed_is_410(
    client: TestClient, org_headers: dict[str, str]
) -> None:
    event = make_event(client, org_headers)
    r = client.post("/api/check-event-code", json={"code": "ZZZ-9999"})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "event_not_found")
    client.post(f"/api/events/{event['id']}/close", headers=org_headers)
    r = client.post("/api/check-event-code", json={"code": event["code"]})
    assert (r.status_code, r.json()["error"]["code"]) == (410, "event_closed")
    client.post(f"/api/events/{event['id']}/open", headers=org_headers)
    assert client.post("/api/check-event-code", json={"code": event["code"]}).status_code == 200


def test_guests_cannot_manage_events(client: TestClient, org_headers: dict[str, str]) -> None:
    event = make_event(client, org_headers)
    guest = register(client, event["code"], "alice").json()
    headers = {"Authorization": f"Bearer {guest['access_token']}"}
    assert client.post("/api/events", json={"name": "Mine"}, headers=headers).status_code == 403
    assert client.get("/api/events", headers=headers).json()["error"]["code"] == "organizer_required"
    assert client.post(f"/api/events/{event['id']}/close", headers=headers).status_code == 403
    assert client.post("/api/events", json={"name": "Anon"}).status_code == 401


def test_organizers_see_and_manage_only_their_own_events(
    client: TestClient, session: Session, org_headers: dict[str, str]
) -> None:
    mine = make_event(client, org_headers, "Mine")
    other_headers = login(client, make_organizer(session)["username"])
    theirs = make_event(client, other_headers, "Theirs")
    register(client, mine["code"], "alice")
    listed = client.get("/api/events", headers=org_headers).json()["events"]
    assert [(e["name"], e["guests"]) for e in listed] == [("Mine", 1)]
    assert client.get(f"/api/events/{theirs['id']}", headers=org_headers).status_code == 404
    assert client.post(f"/api/events/{theirs['id']}/close", headers=org_headers).status_code == 404


def test_a_guest_joins_another_event_with_its_code_once(
    client: TestClient, org_headers: dict[str, str]
) -> None:
    first = make_event(client, org_headers, "First")
    second = make_event(client, org_headers, "Second")
    token = register(client, first["code"], "alice").json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    r = client.post("/api/join-event", json={"code": second["code"].lower()}, headers=headers)
    assert r.status_code == 200 and r.json()["joined"] is True
    again = client.post("/api/join-event", json={"code": second["code"]}, headers=headers)
    assert again.json()["joined"] is False
    me = client.get("/api/me", headers=headers).json()
    assert [e["name"] for e in me["events"]] == ["First", "Second"]
    assert client.post("/api/join-event", json={"code": "NOPE-2345"}, headers=headers).status_code == 404


def test_cli_creates_an_organizer_who_can_log_in(client: TestClient) -> None:
    cmd = [
        sys.executable,
        "-m",
        "app",
        "create-organizer",
        "--username",
        "boss",
        "--email",
        "boss@example.com",
    ]
    done = subprocess.run([*cmd, "--password", PASSWORD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "created organizer 'boss'" in done.stdout
    headers = login(client, "boss")
    assert client.post("/api/events", json={"name": "By CLI"}, headers=headers).status_code == 201
    dup = subprocess.run([*cmd, "--password", PASSWORD], capture_output=True, text=True, timeout=60)
    assert dup.returncode == 1 and "username_taken" in dup.stderr
