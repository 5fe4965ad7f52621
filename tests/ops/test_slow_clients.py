"""Slow clients against the real server (Gunicorn, one worker, MAX_IN_FLIGHT=10): headers or
a body trickling in never take the slots of other clients, and are cut off with a 408."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tools.accounts import PASSWORD, create_organizer_cli
from tools.harness.server import running_server
from tools.harness.slow_clients import Trickle, connect, read_all

pytestmark = [pytest.mark.slow, pytest.mark.once]  # real servers / worker processes

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
    sock = connect(base)
    started = time.monotonic()
    sock.sendall(b"GET /api/health-check HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    answer = read_all(sock)  # the server closes it
    elapsed = time.monotonic() - started
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and b"request_timeout" in answer
    assert READ_TIMEOUT - 1 < elapsed < READ_TIMEOUT + 10


def test_a_connection_that_sends_nothing_is_closed(server: tuple[str, dict[str, str]]) -> None:
    base, _ = server
    sock = connect(base)
    started = time.monotonic()
    answer = read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < READ_TIMEOUT + 10


def test_a_slow_but_steady_upload_is_not_cut_off(server: tuple[str, dict[str, str]]) -> None:
    """500 bytes a second earns a second more: a phone on bad Wi-Fi still gets through."""
    base, _ = server
    body = b'{"login": "slowboss", "password": "' + PASSWORD.encode() + b'", "pad": "' + b"x" * 4000 + b'"}'
    sock = connect(base)
    sock.sendall(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    started = time.monotonic()
    for i in range(0, len(body), 600):  # 600 bytes/s: READ_TIMEOUT + 4.6 kB / 500 B/s > 9 s needed
        sock.sendall(body[i : i + 600])
        time.sleep(1)
    answer = read_all(sock)
    sock.close()
    assert time.monotonic() - started > READ_TIMEOUT  # longer than the bare timeout
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
