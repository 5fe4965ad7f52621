"""The load test's event: the organizer, the photos in which the guests' people appear (and who
is in each), the selfies of those people, and the preparation that uploads and indexes the
photos once, before any guest arrives.

Environment: ``LOAD_ORGANIZER`` / ``LOAD_ORGANIZER_PASSWORD`` (default ``loadtest-organizer``
and a fixed password).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import httpx
from PIL import Image, ImageOps

from tools.paths import ROOT
from tools.photos import fixture_bytes, fixture_image, jpeg, side_by_side

ORGANIZER = os.environ.get("LOAD_ORGANIZER", "loadtest-organizer")
ORGANIZER_PASSWORD = os.environ.get("LOAD_ORGANIZER_PASSWORD", "copper meadow ninety quilt")
#: Tells this run's event and guests apart from an earlier run's on the same database.
RUN = uuid.uuid4().hex[:6]


def _selfie_b() -> bytes:
    im = fixture_image("biden.jpg")
    return jpeg(ImageOps.mirror(im.crop((0, 0, im.width, int(im.height * 0.6)))), quality=90)


def _selfie_c() -> bytes:
    im = fixture_image("Tom_Hanks_54745.png")
    return jpeg(ImageOps.mirror(im.resize((224, 224), Image.Resampling.LANCZOS)), quality=90)


# The event's photos, and whose face each one shows.
EVENT_PHOTOS: dict[str, tuple[bytes, set[str]]] = {
    "a2.jpg": (fixture_bytes("obama2.jpg"), {"A"}),
    "a3.jpg": (fixture_bytes("obama3.jpg"), {"A"}),
    "a_rgba.png": (fixture_bytes("32bit.png"), {"A"}),
    "b.jpg": (fixture_bytes("biden.jpg"), {"B"}),
    "c.png": (fixture_bytes("Tom_Hanks_54745.png"), {"C"}),
    "group.jpg": (fixture_bytes("t1.jpg"), set()),
    "a_and_b.jpg": (side_by_side("obama3.jpg", "biden.jpg"), {"A", "B"}),
    "c_and_group.jpg": (side_by_side("Tom_Hanks_54745.png", "t1.jpg", height=900), {"C"}),
}
SELFIES: dict[str, bytes] = {"A": fixture_bytes("obama.jpg"), "B": _selfie_b(), "C": _selfie_c()}
# What the organizer keeps uploading during the run: nobody the guests are.
EXTRA_PHOTOS = [fixture_bytes("t1.jpg"), fixture_bytes("mask_blue.jpg")]


class Shared:
    """The prepared event, shared by every user of this Locust process."""

    event: ClassVar[dict[str, Any]] = {}
    expected: ClassVar[dict[str, set[int]]] = {}
    organizer_token: ClassVar[str] = ""

    @classmethod
    def set(cls, prepared: dict[str, Any]) -> None:
        cls.event = prepared["event"]
        cls.organizer_token = prepared["organizer_token"]
        cls.expected = {person: set(ids) for person, ids in prepared["expected"].items()}

    @classmethod
    def load(cls, path: Path) -> None:
        cls.set(json.loads(path.read_text()))


def _organizer_token(client: httpx.Client) -> str:
    login = {"login": ORGANIZER, "password": ORGANIZER_PASSWORD}
    r = client.post("/api/login", json=login)
    if r.status_code == 401:
        subprocess.run(  # noqa: S603 - our own CLI, local database
            [
                sys.executable,
                "-m",
                "app",
                "create-organizer",
                "--username",
                ORGANIZER,
                "--email",
                f"{ORGANIZER}@example.com",
                "--password",
                ORGANIZER_PASSWORD,
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        r = client.post("/api/login", json=login)
    if r.status_code != 200:
        raise RuntimeError(f"cannot log in as the load-test organizer: {r.status_code} {r.text[:200]}")
    return str(r.json()["access_token"])


def prepare(host: str) -> dict[str, Any]:
    """Log in as the load-test organizer (created when missing and the database is local),
    create an event, upload its photos and wait until they are indexed: what
    :meth:`Shared.set` takes."""
    with httpx.Client(base_url=host, timeout=120) as client:
        token = _organizer_token(client)
        headers = {"Authorization": f"Bearer {token}"}
        event = client.post("/api/events", json={"name": f"Load test {RUN}"}, headers=headers).json()
        files = [("files", (name, data)) for name, (data, _) in EVENT_PHOTOS.items()]
        accepted = client.post(f"/api/events/{event['id']}/photos", files=files, headers=headers).json()[
            "accepted"
        ]
        ids = {p["filename"]: p["id"] for p in accepted}
        deadline = time.monotonic() + 300
        while True:
            counts = client.get(f"/api/events/{event['id']}", headers=headers).json()["photos"]
            if counts["indexed"] + counts["failed"] == len(EVENT_PHOTOS):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"event photos not indexed in time: {counts}")
            time.sleep(0.5)
        if counts["failed"]:
            raise RuntimeError(f"{counts['failed']} event photos failed to index")
    print(f"load test event {event['code']}: {len(ids)} photos indexed", flush=True)
    return {
        "event": event,
        "organizer_token": token,
        "expected": {
            person: sorted(ids[name] for name, (_, people) in EVENT_PHOTOS.items() if person in people)
            for person in SELFIES
        },
    }
