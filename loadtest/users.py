"""The Locust users: guests walking the real journey, and an organizer uploading photos
meanwhile, on the event of :mod:`loadtest.event` (from ``LOAD_EVENT_FILE`` when it is set,
otherwise prepared at test start).

Every guest: checks the event code, checks a username, registers, logs in, uploads a selfie of
person A, B or C (202 ``checking``), follows it with the long-poll ``GET /api/selfie?wait=``
until the matches are ready, checks that ``my-photos`` lists exactly that person's photos, then
keeps browsing. Two lines of their own time the selfie from the upload: ``selfie -> verdict``
(the face check's answer) and ``selfie -> matches ready``.

Environment: ``SELFIE_READY_TIMEOUT`` (seconds, default 60), ``LOAD_EVENT_FILE``.
"""

from __future__ import annotations

import itertools
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import WorkerRunner
from urllib3 import encode_multipart_formdata

from loadtest.event import EXTRA_PHOTOS, RUN, SELFIES, Shared, prepare
from tools.photos import distinct_copy

SELFIE_READY_TIMEOUT = float(os.environ.get("SELFIE_READY_TIMEOUT", "60"))
GUEST_PASSWORD = "amber violin thirty harbor"  # noqa: S105 - the load test's own guests
_counter = itertools.count(1)
# Numbers of the organizers' new photos, apart in each Locust process.
_copies = itertools.count(os.getpid() * 1_000_000)


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


def prepare_event(environment: Environment, **_kwargs: Any) -> None:
    """Organizer, event and indexed photos, before any guest arrives."""
    if isinstance(environment.runner, WorkerRunner):
        return
    try:
        if os.environ.get("LOAD_EVENT_FILE"):
            Shared.load(Path(os.environ["LOAD_EVENT_FILE"]))
        else:
            Shared.set(prepare(str(environment.host)))
    except Exception as exc:
        print(f"load test set-up failed: {exc}", file=sys.stderr, flush=True)
        environment.process_exit_code = 3
        if environment.runner is not None:
            environment.runner.quit()


events.test_start.add_listener(prepare_event)  # type: ignore[no-untyped-call]  # locust's events are untyped


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
            "password": GUEST_PASSWORD,
            "accept_face_processing": True,
        }
        with self.client.post("/api/register-with-event-code", json=body, catch_response=True) as r:
            if r.status_code != 201 or not _json(r).get("access_token"):
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return False
        login = {"login": self.username, "password": GUEST_PASSWORD}
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
        # Each a new photo (the service would answer the same bytes again as a duplicate).
        files = [
            (
                "files",
                (f"extra{i}.jpg", distinct_copy(random.choice(EXTRA_PHOTOS), next(_copies)), "image/jpeg"),
            )
            for i in range(count)
        ]
        body, content_type = multipart(files)
        path = f"/api/events/{Shared.event['id']}/photos"
        with self.client.post(
            path,
            data=body,  # type: ignore[arg-type]  # annotated str | dict; bytes are sent as they are
            headers={**self.headers, **content_type},
            name="/api/events/[id]/photos",
            catch_response=True,
        ) as r:
            if r.status_code != 202 or len(_json(r).get("accepted", [])) != count:
                r.failure(f"{r.status_code}: {r.text[:200]}")
