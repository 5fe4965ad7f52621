"""Load test: guests walking the real journey, and an organizer uploading photos meanwhile.

Run it through ``./test_performance_progressive.sh`` (stages, verdicts, reports), or by hand:
``locust -f locustfile.py --host http://127.0.0.1:8000``.

The event comes from ``LOAD_EVENT_FILE`` when it is set (the harness prepares it once, before
its stages, with ``python locustfile.py prepare --host URL --out FILE``); otherwise it is
prepared at test start: log in as the load-test organizer (created with ``python -m app
create-organizer`` when it does not exist yet and the database is local), create an event,
upload the fixture photos in which the selfies' people appear, and wait until they are indexed.

Every guest then: checks the event code, checks a username, registers, logs in, uploads a
selfie of person A, B or C (202 ``checking``), follows it with the long-poll ``GET
/api/selfie?wait=`` until the matches are ready, checks that ``my-photos`` lists exactly that
person's photos, then keeps browsing. Two lines of their own time the selfie from the upload:
``selfie -> verdict`` (the face check's answer) and ``selfie -> matches ready``.

Environment: ``LOAD_ORGANIZER`` / ``LOAD_ORGANIZER_PASSWORD`` (default ``loadtest-organizer``
and a fixed password), ``SELFIE_READY_TIMEOUT`` (seconds, default 60), ``LOAD_EVENT_FILE``.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
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

    @classmethod
    def set(cls, prepared: dict[str, Any]) -> None:
        cls.event = prepared["event"]
        cls.organizer_token = prepared["organizer_token"]
        cls.expected = {person: set(ids) for person, ids in prepared["expected"].items()}

    @classmethod
    def load(cls, path: Path) -> None:
        cls.set(json.loads(path.read_text()))


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
        if os.environ.get("LOAD_EVENT_FILE"):
            Shared.load(Path(os.environ["LOAD_EVENT_FILE"]))
        else:
            Shared.set(_prepare(environment.host))
    except Exception as exc:
        print(f"load test set-up failed: {exc}", file=sys.stderr, flush=True)
        environment.process_exit_code = 3
        environment.runner.quit()


def _prepare(host: str) -> dict[str, Any]:
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
    print(f"load test event {event['code']}: {len(ids)} photos indexed", flush=True)
    return {
        "event": event,
        "organizer_token": token,
        "expected": {
            person: sorted(ids[name] for name, (_, people) in EVENT_PHOTOS.items() if person in people)
            for person in SELFIES
        },
    }


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
            "accept_face_processing": True,
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
            if r.status_code != 202 or _json(r).get("status") != "checking":
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return False
        status, verdict = "checking", False
        while status != "ready":
            if time.perf_counter() - start > SELFIE_READY_TIMEOUT:
                error = RuntimeError(f"still {status} after {SELFIE_READY_TIMEOUT:.0f} s")
                self._flow("selfie -> matches ready" if verdict else "selfie -> verdict", start, error)
                return False
            with self.client.get(
                "/api/selfie",
                params={"wait": 20},
                headers=self.headers,
                name="/api/selfie?wait",
                catch_response=True,
            ) as r:
                status = _json(r).get("status", "?")
                if r.status_code != 200 or status not in ("checking", "matching", "ready"):
                    r.failure(f"{r.status_code}: {r.text[:200]}")
                    self._flow("selfie -> verdict", start, RuntimeError(f"selfie {status}"))
                    return False
            if status in ("matching", "ready") and not verdict:
                verdict = True
                self._flow("selfie -> verdict", start, None)
        self._flow("selfie -> matches ready", start, None)
        return self.check_my_photos()

    def _flow(self, name: str, start: float, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="FLOW",
            name=name,
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


def main(argv: list[str] | None = None) -> int:
    """``python locustfile.py prepare --host URL --out FILE``: the event, once, for every stage."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("--host", required=True)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    args.out.write_text(json.dumps(_prepare(args.host)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
