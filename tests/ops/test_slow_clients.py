"""Slow clients against the real server (Gunicorn, one worker, MAX_IN_FLIGHT=10): headers or
a body trickling in never take the slots of other clients, and are cut off with a 408."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from benchmarks._server import running_server
from tests.helpers import PASSWORD, create_organizer_cli

pytestmark = pytest.mark.slow  # real servers / worker processes

READ_TIMEOUT = 6


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, dict[str, str]]]:
    from tests.conftest import truncate_all

    truncate_all()
    env = {
        "EMBEDDED_FACE_WORKERS": "false",
        "MAX_IN_FLIGHT": "10",
        "REQUEST_READ_TIMEOUT": str(READ_TIMEOUT),
    }
    with running_server(workers=1, env=env) as (base, environ):
        create_organizer_cli(environ, "slowboss")
        yield base, environ
    truncate_all()


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


class Trickle:
    """``n`` connections that send their headers and then one byte of body every ``every`` s."""

    def __init__(self, base: str, n: int, every: float) -> None:
        self.socks = [_connect(base) for _ in range(n)]
        self.every = every
        self.answers: list[bytes] = [b""] * n
        self.closed_after: list[float] = [0.0] * n
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]

    def _run(self, i: int) -> None:
        sock, start = self.socks[i], time.monotonic()
        sock.sendall(
            b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        sock.settimeout(self.every)
        answer = b""
        while True:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                try:
                    sock.sendall(b" ")
                except OSError:
                    break
                continue
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
        self.answers[i] = answer
        self.closed_after[i] = time.monotonic() - start

    def __enter__(self) -> Trickle:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for t in self._threads:
            t.join(timeout=120)
        for s in self.socks:
            s.close()


def test_twenty_trickling_bodies_do_not_stop_a_login_and_are_cut_off_with_408(
    server: tuple[str, dict[str, str]],
) -> None:
    base, _ = server
    with Trickle(base, 20, every=5.0) as trickle:
        time.sleep(1)  # all 20 are now in the middle of their bodies
        started = time.monotonic()
        r = httpx.post(f"{base}/api/login", json={"login": "slowboss", "password": PASSWORD}, timeout=20)
        login_seconds = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert login_seconds < 20
        ready = httpx.get(f"{base}/api/health-check", params={"ready": 1}, timeout=20)
        assert ready.status_code == 200  # trickling clients are not work in flight
    for answer, after in zip(trickle.answers, trickle.closed_after, strict=True):
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"request_timeout" in answer and b"connection: close" in answer.lower()
        assert after < READ_TIMEOUT + 10


def test_headers_that_never_finish_are_answered_408_and_the_connection_closed(
    server: tuple[str, dict[str, str]],
) -> None:
    base, _ = server
    sock = _connect(base)
    started = time.monotonic()
    sock.sendall(b"GET /api/health-check HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    answer = _read_all(sock)  # the server closes it
    elapsed = time.monotonic() - started
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and b"request_timeout" in answer
    assert READ_TIMEOUT - 1 < elapsed < READ_TIMEOUT + 10


def test_a_connection_that_sends_nothing_is_closed(server: tuple[str, dict[str, str]]) -> None:
    base, _ = server
    sock = _connect(base)
    started = time.monotonic()
    answer = _read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < READ_TIMEOUT + 10


def test_a_slow_but_steady_upload_is_not_cut_off(server: tuple[str, dict[str, str]]) -> None:
    """500 bytes a second earns a second more: a phone on bad Wi-Fi still gets through."""
    base, _ = server
    body = b'{"login": "slowboss", "password": "' + PASSWORD.encode() + b'", "pad": "' + b"x" * 4000 + b'"}'
    sock = _connect(base)
    sock.sendall(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    started = time.monotonic()
    for i in range(0, len(body), 600):  # 600 bytes/s: READ_TIMEOUT + 4.6 kB / 500 B/s > 9 s needed
        sock.sendall(body[i : i + 600])
        time.sleep(1)
    answer = _read_all(sock)
    sock.close()
    assert time.monotonic() - started > READ_TIMEOUT  # longer than the bare timeout
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
