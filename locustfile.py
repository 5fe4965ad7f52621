"""Load test: guests walking the real journey, and an organizer uploading photos meanwhile.

Run it through ``./test_performance_progressive.sh`` (stages, verdicts, reports), or by hand:
``locust -f locustfile.py --host http://127.0.0.1:8000``.

At test start (not by hand) it logs in as the load-test organizer (created with
``python -m app create-organizer`` when it does not exist yet and the database is local),
creates an event, uploads the fixture photos in which the selfies' people appear, and waits
until they are indexed. Every guest then: checks the event code, checks a username, registers,
logs in, uploads a selfie of person A, B or C, polls its status until the matches are ready,
checks that ``my-photos`` lists exactly that person's photos, then keeps browsing. The time
from selfie upload to matches ready is reported as its own line, ``selfie -> matches ready``.

Environment: ``LOAD_ORGANIZER`` / ``LOAD_ORGANIZER_PASSWORD`` (default ``loadtest-organizer``
and a fixed password), ``SELFIE_READY_TIMEOUT`` (seconds, default 60).
"""

from __future__ import annotations

import io
import itertools
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, events, task
from locust.exception import StopUser
from PIL import Image, ImageOps
from urllib3 import encode_multipart_formdata

ROOT = Path(__file__).resolve().parent
FACES = ROOT / "tests" / "fixtures" / "faces"
ORGANIZER = os.environ.get("LOAD_ORGANIZER", "loadtest-organizer")
ORGANIZER_PASSWORD = os.environ.get("LOAD_ORGANIZER_PASSWORD", "load-test organizer password")
SELFIE_READY_TIMEOUT = float(os.environ.get("SELFIE_READY_TIMEOUT", "60"))
RUN = uuid.uuid4().hex[:6]
_counter = itertools.count(1)


def _jpeg(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def _open(name: str) -> Image.Image:
    return ImageOps.exif_transpose(Image.open(FACES / name)).convert("RGB")


def _side_by_side(*names: str, height: int = 600) -> bytes:
    images = [_open(n) for n in names]
    images = [im.resize((round(im.width * height / im.height), height)) for im in images]
    canvas = Image.new("RGB", (sum(i.width for i in images) + 40 * len(images), height + 40), "white")
    x = 20
    for im in images:
        canvas.paste(im, (x, 20))
        x += im.width + 40
    return _jpeg(canvas)


def _selfie_b() -> bytes:
    im = _open("biden.jpg")
    return _jpeg(ImageOps.mirror(im.crop((0, 0, im.width, int(im.height * 0.6)))))


def _selfie_c() -> bytes:
    im = _open("Tom_Hanks_54745.png")
    return _jpeg(ImageOps.mirror(im.resize((224, 224), Image.Resampling.LANCZOS)))


# The event's photos, and whose face each one shows.
EVENT_PHOTOS: dict[str, tuple[bytes, set[str]]] = {
    "a2.jpg": ((FACES / "obama2.jpg").read_bytes(), {"A"}),
    "a3.jpg": ((FACES / "obama3.jpg").read_bytes(), {"A"}),
    "a_rgba.png": ((FACES / "32bit.png").read_bytes(), {"A"}),
    "b.jpg": ((FACES / "biden.jpg").read_bytes(), {"B"}),
    "c.png": ((FACES / "Tom_Hanks_54745.png").read_bytes(), {"C"}),
    "group.jpg": ((FACES / "t1.jpg").read_bytes(), set()),
    "a_and_b.jpg": (_side_by_side("obama3.jpg", "biden.jpg"), {"A", "B"}),
    "c_and_group.jpg": (_side_by_side("Tom_Hanks_54745.png", "t1.jpg", height=900), {"C"}),
}
SELFIES: dict[str, bytes] = {"A": (FACES / "obama.jpg").read_bytes(), "B": _selfie_b(), "C": _selfie_c()}
# What the organizer keeps uploading during the run: nobody the guests are.
EXTRA_PHOTOS = [(FACES / "t1.jpg").read_bytes(), (FACES / "mask_blue.jpg").read_bytes()]


class Shared:
    event: dict[str, Any] = {}
    expected: dict[str, set[int]] = {}
    organizer_token: str = ""


def multipart(fields: list[tuple[str, tuple[str, bytes, str]]]) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a multipart upload (FastHttpUser has no ``files=``)."""
    body, content_type = encode_multipart_formdata(fields)
    return body, {"Content-Type": content_type}


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except Exception:
        return {}
    return body if isinstance(body, dict) else {}


def _organizer_token(client: Any) -> str:
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


@events.test_start.add_listener
def prepare_event(environment: Any, **_kwargs: Any) -> None:
    """Organizer, event and indexed photos, before any guest arrives."""
    from locust.runners import WorkerRunner

    if isinstance(environment.runner, WorkerRunner):
        return
    try:
        _prepare(environment.host)
    except Exception as exc:
        print(f"load test set-up failed: {exc}", file=sys.stderr, flush=True)
        environment.process_exit_code = 3
        environment.runner.quit()


def _prepare(host: str) -> None:
    import httpx

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
    Shared.event = event
    Shared.organizer_token = token
    Shared.expected = {
        person: {ids[name] for name, (_, people) in EVENT_PHOTOS.items() if person in people}
        for person in SELFIES
    }
    print(f"load test event {event['code']}: {len(ids)} photos indexed", flush=True)


class Guest(FastHttpUser):
    """A guest on a phone: the sign-up journey once, then browsing."""

    weight = 20
    wait_time = between(1, 3)
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        if not Shared.event:
            raise StopUser()
        n = next(_counter)
        self.username = f"lt{RUN}u{n}"
        self.person = random.choice(sorted(SELFIES))
        self.headers: dict[str, str] = {}
        if not self.sign_up() or not self.send_selfie():
            raise StopUser()

    def sign_up(self) -> bool:
        code = Shared.event["code"]
        with self.client.post("/api/check-event-code", json={"code": code.lower()}, catch_response=True) as r:
            if r.status_code != 200 or _json(r).get("event", {}).get("code") != code:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return False
        params = {"username": self.username, "email": f"{self.username}@example.com"}
        with self.client.get("/api/check-user-availability", params=params, catch_response=True) as r:
            body = _json(r)
            if r.status_code != 200 or not body.get("username", {}).get("available"):
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return False
        body = {
            "event_code": code,
            "username": self.username,
            "email": params["email"],
            "password": "load test password",
        }
        with self.client.post("/api/register-with-event-code", json=body, catch_response=True) as r:
            if r.status_code != 201 or not _json(r).get("access_token"):
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return False
        login = {"login": self.username, "password": "load test password"}
        with self.client.post("/api/login", json=login, catch_response=True) as r:
            token = _json(r).get("access_token")
            if r.status_code != 200 or not token:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return False
        self.headers = {"Authorization": f"Bearer {token}"}
        return True

    def send_selfie(self) -> bool:
        start = time.perf_counter()
        files = {"file": ("selfie.jpg", SELFIES[self.person], "image/jpeg")}
        with self.client.post(
            "/api/upload-selfie", files=files, headers=self.headers, catch_response=True
        ) as r:
            if r.status_code != 202 or _json(r).get("status") != "processing":
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return False
        status = "processing"
        while status == "processing":
            if time.perf_counter() - start > SELFIE_READY_TIMEOUT:
                self._flow(start, RuntimeError("matches not ready in time"))
                return False
            time.sleep(0.25)
            with self.client.get("/api/selfie", headers=self.headers, catch_response=True) as r:
                status = _json(r).get("status", "?")
                if r.status_code != 200 or status not in ("processing", "ready"):
                    r.failure(f"{r.status_code}: {r.text[:200]}")
                    self._flow(start, RuntimeError(f"selfie {status}"))
                    return False
        self._flow(start, None)
        return self.check_my_photos()

    def _flow(self, start: float, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="FLOW",
            name="selfie -> matches ready",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=0,
            exception=error,
            context={},
        )

    def check_my_photos(self) -> bool:
        with self.client.get("/api/my-photos", headers=self.headers, catch_response=True) as r:
            photos = _json(r).get("photos")
            got = {p.get("id") for p in photos} if isinstance(photos, list) else None
            if r.status_code != 200 or got != Shared.expected[self.person]:
                r.failure(
                    f"person {self.person}: expected photos {sorted(Shared.expected[self.person])}, got {got}"
                )
                return False
        return True

    @task(3)
    def my_photos(self) -> None:
        self.check_my_photos()

    @task(1)
    def me(self) -> None:
        with self.client.get("/api/me", headers=self.headers, catch_response=True) as r:
            if r.status_code != 200 or _json(r).get("username") != self.username:
                r.failure(f"{r.status_code}: {r.text[:200]}")


class Organizer(FastHttpUser):
    """The organizer keeps uploading photos during the event, so indexing competes with guests."""

    weight = 1
    fixed_count = 1
    wait_time = between(5, 10)
    network_timeout = 60.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        if not Shared.event:
            raise StopUser()
        self.headers = {"Authorization": f"Bearer {Shared.organizer_token}"}

    @task
    def upload_photos(self) -> None:
        count = random.randint(1, 3)
        files = [
            ("files", (f"extra{i}.jpg", random.choice(EXTRA_PHOTOS), "image/jpeg")) for i in range(count)
        ]
        body, content_type = multipart(files)
        path = f"/api/events/{Shared.event['id']}/photos"
        with self.client.post(
            path,
            data=body,
            headers={**self.headers, **content_type},
            name="/api/events/[id]/photos",
            catch_response=True,
        ) as r:
            if r.status_code != 202 or len(_json(r).get("accepted", [])) != count:
                r.failure(f"{r.status_code}: {r.text[:200]}")
