"""Redis away: the throttles keep counting, per process, and say so. A Redis that refuses
connections and one that accepts them but never answers (a socket of this test) are each
tried once per ``REDIS_RETRY_SECONDS``, not on every request; the limits still hold; the
outage shows in ``throttle.backend_state()``, in ``/metrics`` and in one log line, and its
end too."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from app.core import throttle
from app.core.config import get_settings
from app.events.service import CODE_ALPHABET
from tests.conftest import REDIS_URL
from tests.helpers import ops_headers


class FakeRedis:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (``hang``) or
    passes them to the real Redis (``forward``); it counts the connections it accepts."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.mode = "hang"
        self.accepted = 0
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            if self.mode == "hang":
                self.held.append(conn)  # read nothing, answer nothing
            else:
                host, port = REDIS_URL.split("//")[1].split("/")[0].split(":")
                upstream = socket.create_connection((host, int(port)), timeout=30)
                for a, b in ((conn, upstream), (upstream, conn)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                s.close()

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def fake_redis() -> Iterator[FakeRedis]:
    server = FakeRedis()
    yield server
    server.close()


@pytest.fixture
def redis_at(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Point the throttles at a Redis URL (tried again once a minute after a failure, unless
    ``retry`` says otherwise)."""
    settings = get_settings()

    def point(url: str, retry: float = 60.0) -> None:
        monkeypatch.setattr(settings, "redis_url", url)
        monkeypatch.setattr(settings, "redis_key_prefix", f"event-photos-test-{os.getpid()}")
        monkeypatch.setattr(settings, "redis_retry_seconds", retry)
        monkeypatch.setattr(settings, "throttle_code_failures_per_address", "5/minute")
        throttle.forget_limiter()

    yield point
    monkeypatch.undo()
    throttle.forget_limiter()


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


def _wrong_codes(client: TestClient, n: int) -> list[int]:
    codes = ("NOPE-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(8)) for _ in range(n))
    return [client.post("/api/check-event-code", json={"code": code}).status_code for code in codes]


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def _outage_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "app.throttle"]


def test_a_redis_that_never_answers_is_tried_once_per_period_and_the_limits_still_hold(
    client: TestClient,
    redis_at: Callable[..., None],
    fake_redis: FakeRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.throttle")
    redis_at(f"redis://127.0.0.1:{fake_redis.port}/0")
    errors_before = _sample("throttle_backend_errors_total")
    assert _wrong_codes(client, 30) == [404] * 5 + [429] * 25
    # One call waited for its timeout; the circuit breaker kept the 100 others off the socket.
    assert fake_redis.accepted == 1
    assert _sample("throttle_backend_errors_total") - errors_before == 1
    state = throttle.backend_state()
    assert (state.state, state.store, state.reason) == ("degraded", "memory", "TimeoutError")
    logs = _outage_logs(caplog)
    assert len(logs) == 1 and "does not answer" in logs[0]


def test_a_closed_redis_port_degrades_to_per_process_counts_visibly(
    client: TestClient, redis_at: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app.throttle")
    redis_at(f"redis://127.0.0.1:{_closed_port()}/0")
    assert throttle.backend_state().state == "ok"  # nothing has tried it yet
    assert _wrong_codes(client, 8) == [404] * 5 + [429] * 3
    state = throttle.backend_state()
    assert (state.state, state.reason) == ("degraded", "ConnectionError")
    assert state.detail is not None and state.since is not None
    assert _sample("throttle_backend_degraded") == 1
    metrics = client.get("/metrics", headers=ops_headers()).text
    assert "throttle_backend_degraded 1.0" in metrics
    assert 'throttle_refusals_total{throttle="code-failures"}' in metrics
    # A ping at start-up finds it down too, without waiting for a request.
    throttle.forget_limiter()
    assert throttle.backend_state(probe=True).state == "degraded"
    assert len(_outage_logs(caplog)) == 2  # once per limiter built: each process logs once


def test_when_redis_answers_again_counts_are_shared_again_and_the_end_is_logged(
    client: TestClient,
    redis_at: Callable[..., None],
    fake_redis: FakeRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.throttle")
    redis_at(f"redis://127.0.0.1:{fake_redis.port}/0", retry=1.0)
    assert _wrong_codes(client, 3) == [404] * 3
    assert throttle.backend_state().state == "degraded"
    fake_redis.mode = "forward"
    time.sleep(1.5)  # the circuit breaker's period: then one call tries Redis again
    statuses = _wrong_codes(client, 7)
    assert statuses[:5] == [404] * 5 and statuses[5:] == [429] * 2  # counted afresh in Redis
    assert throttle.backend_state() == throttle.BackendState("ok", "redis")
    assert _sample("throttle_backend_degraded") == 0
    logs = _outage_logs(caplog)
    assert len(logs) == 2 and "answers again" in logs[1]
    throttle.reset()


def test_one_export_slot_per_guest_holds_in_memory_while_redis_is_away(
    redis_at: Callable[..., None], fake_redis: FakeRedis
) -> None:
    redis_at(f"redis://127.0.0.1:{fake_redis.port}/0")
    slot = throttle.Slot("test-export", ttl=60.0)
    holder = slot.acquire("7")
    assert holder is not None and slot.acquire("7") is None and slot.acquire("8") is not None
    slot.release("7", holder)
    again: Any = slot.acquire("7")
    assert again is not None


def test_the_health_check_shows_throttles_counting_per_process_while_redis_is_away(
    client: TestClient, redis_at: Callable[..., None]
) -> None:
    assert client.get("/api/health-check").json()["throttles"]["state"] == "ok"
    redis_at(f"redis://127.0.0.1:{_closed_port()}/0")
    _wrong_codes(client, 1)
    health = client.get("/api/health-check")
    assert health.status_code == 200  # every request is still served: not a reason to pull the node
    body = health.json()
    assert body["status"] == "degraded"
    assert body["throttles"]["state"] == "degraded" and body["throttles"]["store"] == "memory"
    assert "detail" not in body["throttles"]  # the driver's words only with the ops token
    with_token = client.get("/api/health-check", headers=ops_headers()).json()
    assert with_token["throttles"].get("detail")
