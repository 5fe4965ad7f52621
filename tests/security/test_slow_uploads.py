"""Slow uploads cannot freeze the service: a selfie's or a photo's body is read by the worker's
event loop (no thread waits on the client), it must keep up a minimum rate and arrive within
its endpoint's total time (408), uploads are counted when they start, and one guest and one
worker hold a bounded number of uploads at once (429 / 503 with ``Retry-After``)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio.to_thread
import httpx
import pytest
from fastapi.testclient import TestClient

from app.accounts.models import User
from app.core.config import get_settings
from app.core.security import create_access_token, hash_password
from tools.accounts import PASSWORD
from tools.harness.server import running_server
from tools.harness.slow_clients import connect

pytestmark = pytest.mark.once

BOUNDARY = "slowboundary"
HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="s.jpg"\r\n'
    "Content-Type: image/jpeg\r\n\r\n"
).encode()

# The real server: one worker of 40 threads (MAX_IN_FLIGHT + 8 < anyio's 40), uploads that
# must average 200 bytes a second after 3 s and end within 30 s.
ATTACKERS = 50
TOTAL_SECONDS = 30
SERVER_ENV = {
    "EMBEDDED_FACE_WORKERS": "false",
    "MAX_IN_FLIGHT": "20",
    "REQUEST_READ_TIMEOUT": "3",
    "UPLOAD_MIN_RATE": "200",
    "SELFIE_UPLOAD_MAX_SECONDS": str(TOTAL_SECONDS),
    "SELFIE_UPLOADS_PER_WORKER": "64",
}


class SelfieTrickle:
    """One selfie upload per token over raw sockets: the headers (a 200 KB body announced),
    then ``chunk`` bytes every ``every`` seconds until the server answers."""

    def __init__(
        self, base: str, tokens: list[str], *, chunk: int, every: float, stagger: float = 0.05
    ) -> None:
        self.socks = [connect(base) for _ in tokens]
        self.tokens = tokens
        self.chunk, self.every, self.stagger = chunk, every, stagger
        self.answers: list[bytes] = [b""] * len(tokens)
        self.answered_after: list[float | None] = [None] * len(tokens)
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(len(tokens))
        ]

    def _run(self, i: int) -> None:
        time.sleep(i * self.stagger)  # a burst of requests at once would meet the in-flight bound
        sock, start = self.socks[i], time.monotonic()
        sock.sendall(
            b"POST /api/upload-selfie HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + self.tokens[i].encode()
            + f"\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n".encode()
            + b"Content-Length: 200000\r\n\r\n"
            + HEAD
        )
        sock.settimeout(self.every)
        answer = b""
        while True:
            try:
                got = sock.recv(4096)
            except TimeoutError:
                try:
                    sock.sendall(b"x" * self.chunk)
                except OSError:
                    break
                continue
            except OSError:
                break
            if not got:
                break
            if not answer:
                self.answered_after[i] = time.monotonic() - start
                sock.settimeout(10)  # the answer is coming: stop sending, read it to its end
            answer += got
        self.answers[i] = answer

    def all_sending(self) -> None:
        """Wait until every upload has sent its headers and the start of its body."""
        time.sleep(len(self.tokens) * self.stagger + 2)

    def __enter__(self) -> SelfieTrickle:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for t in self._threads:
            t.join(timeout=TOTAL_SECONDS + 120)
        for s in self.socks:
            s.close()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list[str]]]:
    """The server, ``ATTACKERS`` guests' tokens, and a guest ``honest`` (password PASSWORD)."""
    from app.core.database import session_scope
    from tests.conftest import truncate_all

    truncate_all()
    key = secrets.token_urlsafe(48)
    password_hash = hash_password(PASSWORD)
    with session_scope() as session:
        users = [
            User(username=f"trickler{i}", email=f"trickler{i}@example.com", password_hash=password_hash)
            for i in range(ATTACKERS)
        ]
        session.add_all([*users, User(username="honest", email="honest@e.com", password_hash=password_hash)])
        session.flush()
        signing = get_settings().model_copy(update={"secret_key": key})
        tokens = [create_access_token(subject=str(u.id), settings=signing) for u in users]
    with running_server(workers=1, env={**SERVER_ENV, "SECRET_KEY": key}) as (base, _environ):
        yield base, tokens
    truncate_all()


@pytest.mark.slow
def test_more_trickling_selfie_uploads_than_threads_leave_health_login_and_photos_answering(
    server: tuple[str, list[str]],
) -> None:
    """The finding's attack: 50 uploads at 600 B/s (above the old 500 B/s rule, which let them
    last hours) on a worker of 40 threads. The others are still answered while they trickle,
    and each is cut off with a 408 once its total time is up."""
    base, tokens = server
    with SelfieTrickle(base, tokens, chunk=150, every=0.25) as trickle:
        trickle.all_sending()
        assert httpx.get(f"{base}/api/health-check", timeout=60).status_code == 200
        r = httpx.post(f"{base}/api/login", json={"login": "honest", "password": PASSWORD}, timeout=60)
        assert r.status_code == 200, r.text
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        mine = httpx.get(f"{base}/api/my-photos", headers=headers, timeout=60)
        assert mine.status_code == 200, mine.text
        # ...while all of them were still being received.
        assert trickle.answered_after == [None] * ATTACKERS
    for answer, after in zip(trickle.answers, trickle.answered_after, strict=True):
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]
        assert b"took longer than this endpoint allows" in answer and b"connection: close" in answer.lower()
        assert after is not None and after < TOTAL_SECONDS + 60  # not the hours of the old rule


@pytest.mark.slow
def test_a_selfie_upload_slower_than_the_minimum_rate_is_cut_off_before_its_total_time(
    server: tuple[str, list[str]],
) -> None:
    base, tokens = server
    with SelfieTrickle(base, tokens[:1], chunk=10, every=0.5) as trickle:  # 20 B/s, under 200
        pass
    (answer,), (after,) = trickle.answers, trickle.answered_after
    assert answer.startswith(b"HTTP/1.1 408 ") and b"arrived too slowly" in answer, answer[:300]
    assert after is not None and after < TOTAL_SECONDS


# --- in this process: what an upload holds while its body arrives -----------------------------


def _multipart(data: bytes, field: str = "file") -> tuple[bytes, bytes]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="p.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + data[:100], data[100:] + f"\r\n--{BOUNDARY}--\r\n".encode()


class Held:
    """Uploads whose bodies stop half-way until ``release``, sent to the app in this process."""

    def __init__(self) -> None:
        from main import app

        self.release = asyncio.Event()
        self.sent = 0
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")

    def start(
        self, path: str, headers: dict[str, str], data: bytes, field: str = "file"
    ) -> asyncio.Task[Any]:
        first, rest = _multipart(data, field)

        async def body() -> AsyncIterator[bytes]:
            yield first
            self.sent += 1
            await self.release.wait()
            yield rest

        content_type = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        return asyncio.ensure_future(
            self.client.post(path, content=body(), headers={**headers, **content_type})
        )

    async def all_started(self, n: int) -> None:
        async with asyncio.timeout(30):
            while self.sent < n:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # and waiting for the rest of their bodies


def test_uploads_waiting_for_their_body_hold_no_thread(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any], guest_headers: dict[str, str]
) -> None:
    from tools.photos import fixture_bytes

    async def run() -> tuple[int, list[int]]:
        held = Held()
        tasks = [held.start("/api/upload-selfie", guest_headers, fixture_bytes("obama.jpg"))]
        path = f"/api/events/{event['id']}/photos"
        tasks += [held.start(path, org_headers, fixture_bytes("obama2.jpg"), "files") for _ in range(3)]
        await held.all_started(len(tasks))
        borrowed = anyio.to_thread.current_default_thread_limiter().borrowed_tokens
        held.release.set()
        responses = await asyncio.gather(*tasks)
        await held.client.aclose()
        return borrowed, [r.status_code for r in responses]

    borrowed, statuses = asyncio.run(run())
    assert borrowed == 0  # the old routes each held a thread while the client was sending
    assert statuses == [202, 202, 202, 202]


def test_a_photo_upload_is_cut_off_at_its_total_time(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "photo_upload_max_seconds", 1.0)
    monkeypatch.setattr(get_settings(), "upload_min_rate", 1)

    async def run() -> httpx.Response:
        held = Held()
        task = held.start(f"/api/events/{event['id']}/photos", org_headers, b"x" * 1000, "files")
        async with asyncio.timeout(30):
            response: httpx.Response = await task
        held.release.set()
        await held.client.aclose()
        return response

    r = asyncio.run(run())
    assert (r.status_code, r.json()["error"]["code"]) == (408, "request_timeout")
    assert "1 s" in r.json()["error"]["message"]
    listed = client.get(f"/api/events/{event['id']}/photos", headers=org_headers).json()
    assert listed["photos"] == []


def test_concurrent_uploads_are_capped_per_guest_and_per_worker_with_retry_after(
    client: TestClient, event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import bearer, register

    monkeypatch.setattr(get_settings(), "selfie_uploads_per_guest", 1)
    monkeypatch.setattr(get_settings(), "selfie_uploads_per_worker", 2)
    guests = [bearer(register(client, event["code"], f"crowd{i}")) for i in range(3)]

    async def run() -> tuple[httpx.Response, httpx.Response]:
        held = Held()
        first = [held.start("/api/upload-selfie", g, b"x" * 1000) for g in guests[:2]]
        await held.all_started(2)
        async with asyncio.timeout(30):
            again = await held.client.post(
                "/api/upload-selfie", files={"file": ("s.jpg", b"y")}, headers=guests[0]
            )
            other = await held.client.post(
                "/api/upload-selfie", files={"file": ("s.jpg", b"y")}, headers=guests[2]
            )
        held.release.set()
        await asyncio.gather(*first)
        await held.client.aclose()
        return again, other

    again, other = asyncio.run(run())
    assert (again.status_code, again.json()["error"]["code"]) == (429, "too_many_requests")
    assert "in progress" in again.json()["error"]["message"] and int(again.headers["Retry-After"]) > 0
    assert (other.status_code, other.json()["error"]["code"]) == (503, "service_unavailable")
    assert int(other.headers["Retry-After"]) > 0
    # Once they are over, the places are free again.
    r = client.post("/api/upload-selfie", files={"file": ("s.jpg", b"y")}, headers=guests[2])
    assert r.json()["error"]["code"] == "unsupported_format"


def test_an_abandoned_selfie_upload_counts_toward_the_guests_uploads(
    client: TestClient, guest_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_selfies_per_guest", "2/hour")

    async def abandon() -> None:
        from main import app

        sent: list[dict[str, Any]] = [
            {"type": "http.request", "body": _multipart(b"x" * 1000)[0], "more_body": True},
            {"type": "http.disconnect"},
        ]

        async def receive() -> dict[str, Any]:
            return sent.pop(0)

        async def send(_message: Any) -> None:
            pass

        headers = [(k.lower().encode(), v.encode()) for k, v in guest_headers.items()]
        content_type = f"multipart/form-data; boundary={BOUNDARY}".encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/upload-selfie",
            "raw_path": b"/api/upload-selfie",
            "query_string": b"",
            "root_path": "",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "headers": [(b"content-type", content_type), *headers],
        }
        await app(scope, receive, send)

    for _ in range(2):
        asyncio.run(abandon())
    r = client.post("/api/upload-selfie", files={"file": ("s.jpg", b"y")}, headers=guest_headers)
    assert (r.status_code, r.json()["error"]["code"]) == (429, "too_many_requests")
    assert int(r.headers["Retry-After"]) > 0
