"""The real server: Gunicorn with gunicorn_config.py, two web workers and the embedded
face-worker pool, driven over HTTP through the whole guest journey."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tools.accounts import PASSWORD, create_organizer_cli
from tools.harness.server import running_server
from tools.photos import fixture_bytes

pytestmark = pytest.mark.slow  # real servers / worker processes


def _wait(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_guest_journey_against_gunicorn_with_the_embedded_face_workers(clean_db: None) -> None:
    with running_server(workers=2, env={"FACE_WORKERS": "1"}) as (base, env):
        create_organizer_cli(env)
        with httpx.Client(base_url=base, timeout=30) as c:
            org = {
                "Authorization": "Bearer "
                + c.post("/api/login", json={"login": "boss", "password": PASSWORD}).json()["access_token"]
            }
            event = c.post("/api/events", json={"name": "Gala"}, headers=org).json()
            files = [
                ("files", ("a.jpg", fixture_bytes("obama2.jpg"))),
                ("files", ("b.jpg", fixture_bytes("biden.jpg"))),
            ]
            accepted = c.post(f"/api/events/{event['id']}/photos", files=files, headers=org).json()[
                "accepted"
            ]
            _wait(
                lambda: c.get(f"/api/events/{event['id']}", headers=org).json()["photos"]["indexed"] == 2,
                120,
                "indexing",
            )

            assert c.post("/api/check-event-code", json={"code": event["code"]}).status_code == 200
            assert c.get("/api/check-user-availability", params={"username": "alice"}).json()["username"][
                "available"
            ]
            r = c.post(
                "/api/register-with-event-code",
                json={
                    "event_code": event["code"],
                    "username": "alice",
                    "email": "alice@example.com",
                    "password": PASSWORD,
                    "accept_face_processing": True,
                },
            )
            assert r.status_code == 201
            guest = {
                "Authorization": "Bearer "
                + c.post("/api/login", json={"login": "alice", "password": PASSWORD}).json()["access_token"]
            }
            r = c.post(
                "/api/upload-selfie", files={"file": ("me.jpg", fixture_bytes("obama.jpg"))}, headers=guest
            )
            assert r.status_code == 202, r.text
            _wait(lambda: c.get("/api/selfie", headers=guest).json()["status"] == "ready", 60, "matching")
            photos = c.get("/api/my-photos", headers=guest).json()["photos"]
            assert [p["id"] for p in photos] == [accepted[0]["id"]]
            assert c.get(photos[0]["thumbnail_url"], headers=guest).status_code == 200
            r = c.post(
                "/api/upload-selfie", files={"file": ("g.jpg", fixture_bytes("t1.jpg"))}, headers=guest
            )
            assert (r.status_code, r.json()["status"]) == (202, "checking")
            state = c.get("/api/selfie", params={"wait": 30}, headers=guest).json()
            assert (state["status"], state["error"]["code"]) == ("rejected", "multiple_faces")
            # The refused selfie keeps the previous one's photos.
            assert [p["id"] for p in c.get("/api/my-photos", headers=guest).json()["photos"]] == [
                accepted[0]["id"]
            ]
            # A new selfie, followed live on the event stream until its photos are ready.
            seen = []
            with c.stream("GET", "/api/selfie/events", headers=guest) as stream:
                r = c.post(
                    "/api/upload-selfie",
                    files={"file": ("me.jpg", fixture_bytes("obama.jpg"))},
                    headers=guest,
                )
                assert r.status_code == 202
                for line in stream.iter_lines():
                    if line.startswith("data: "):
                        state = json.loads(line[len("data: ") :])
                        seen.append((state["selfie_id"], state["status"]))
                        if seen[-1] == (r.json()["selfie_id"], "ready"):
                            break
            assert seen[0][1] == "rejected" and seen[-1] == (r.json()["selfie_id"], "ready")
