"""Statistics, the database probe, the ops token and the in-flight bound, in process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.ops import metrics, middleware, stats
from tests.helpers import bearer, login, make_event, make_organizer, ops_headers, register
from tools.photos import fixture_bytes


def test_percentiles_are_interpolated_within_the_latency_buckets() -> None:
    endpoint = "GET /percentile-test"
    for ms in range(1, 1001):
        metrics.LATENCY.labels("GET", endpoint).observe(ms / 1000)
    summary = stats.take_reading().endpoints[endpoint].summary()
    assert summary["count"] == 1000 and summary["mean_ms"] == pytest.approx(500.5)
    assert summary["p95_ms"] == pytest.approx(950, rel=0.05)
    assert summary["p99_ms"] == pytest.approx(990, rel=0.05)


_DEAD_WORKER = """
from app.ops import metrics
for status in ("200", "200", "200", "200", "500"):
    metrics.REQUESTS.labels("GET", "GET /x", status).inc()
    metrics.LATENCY.labels("GET", "GET /x").observe(0.01)
for _ in range(7):
    metrics.IN_FLIGHT.inc()  # it dies while serving
"""

_LIVE_WORKER = """
import json
from app.ops import metrics, middleware, stats
print(json.dumps(stats.request_figures()))
"""


def test_a_dead_worker_keeps_its_totals_but_not_its_in_flight(tmp_path: Path) -> None:
    from prometheus_client import multiprocess

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    dead = subprocess.run([sys.executable, "-c", _DEAD_WORKER], env=env, check=True, timeout=60)
    assert dead.returncode == 0
    (dead_pid,) = {int(p.stem.rsplit("_", 1)[1]) for p in tmp_path.glob("*.db")}
    # As Gunicorn's child_exit does (prometheus-client leaves this one untyped).
    multiprocess.mark_process_dead(dead_pid, path=str(tmp_path))  # type: ignore[no-untyped-call]

    out = subprocess.run(
        [sys.executable, "-c", _LIVE_WORKER], env=env, check=True, timeout=60, capture_output=True, text=True
    )
    figures = json.loads(out.stdout)
    assert figures["endpoints"]["GET /x"]["total"]["count"] == 5
    assert figures["endpoints"]["GET /x"]["total"]["errors"] == 1
    assert figures["in_flight"] == 0
    assert [(w["alive"], w["requests"]) for w in figures["workers"] if w["pid"] == dead_pid] == [(False, 5)]


def test_stats_report_endpoints_jobs_and_guests(client: TestClient, session: Session) -> None:
    org = login(client, make_organizer(session)["username"])
    event = make_event(client, org)
    register(client, event["code"], "alice")
    client.post(
        f"/api/events/{event['id']}/photos",
        files=[("files", ("a.png", fixture_bytes("Tom_Hanks_54745.png")))],
        headers=org,
    )
    body = client.get("/api/stats", headers=ops_headers()).json()
    assert body["guests_registered"] == 1 and body["events"] == 1
    assert body["face_jobs"]["pending"] == 1 and body["face_jobs"]["photos"]["pending"] == 1
    assert body["requests"]["endpoints"]["POST /api/register-with-event-code"]["total"]["count"] >= 1


def test_db_raw_test_times_a_round_trip_and_an_indexed_query(client: TestClient) -> None:
    body = client.get("/api/db-raw-test", headers=ops_headers()).json()
    assert body["raw_select_1_ms"] >= 0 and body["indexed_query"]["index"] == "uq_users_username_lower"
    pool = body["pool"]
    assert pool["class"] == "CountingQueuePool"
    assert pool["size"] == get_settings().db_pool_size and pool["waiting"] == 0
    assert {"checked_out", "overflow", "timeout_seconds"} <= set(pool)


def test_ops_endpoints_need_the_generated_token_when_none_is_set(client: TestClient) -> None:
    assert not get_settings().ops_token
    token_file = get_settings().ops_token_file
    for path in ("/api/stats", "/api/db-raw-test", "/metrics"):
        r = client.get(path)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "ops_token_required")
        assert "DATA_DIR/ops_token" in r.json()["error"]["message"]
    assert token_file.stat().st_mode & 0o777 == 0o600
    generated = token_file.read_text().strip()
    assert len(generated) >= 32
    assert client.get("/api/stats", headers={"X-Ops-Token": generated}).status_code == 200


def test_ops_endpoints_need_the_token_when_one_is_set(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "ops_token", "s3cret-ops")
    for path in ("/api/stats", "/api/db-raw-test", "/metrics"):
        r = client.get(path)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "ops_token_required")
        assert client.get(path, headers={"Authorization": "Bearer s3cret-ops"}).status_code == 200
        assert client.get(path, headers={"X-Ops-Token": "s3cret-ops"}).status_code == 200
        assert client.get(path, headers={"X-Ops-Token": "wrong"}).status_code == 401
    assert client.get("/api/health-check").status_code == 200


def test_metrics_use_the_prometheus_text_format(client: TestClient) -> None:
    client.get("/api/health-check")
    r = client.get("/metrics", headers=ops_headers())
    assert r.headers["content-type"].startswith("text/plain")
    assert "http_request_duration_seconds_bucket" in r.text
    assert 'face_jobs{kind="photos",status="pending"}' in r.text


def _app_with_a_slow_route(seconds: float) -> Any:
    """The real app plus one route that works for ``seconds`` (a request being processed)."""
    from app.main import create_app

    app = create_app()

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(seconds)
        return {"ok": True}

    return app


def test_beyond_the_in_flight_bound_requests_get_an_immediate_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "max_in_flight", 2)
    app = _app_with_a_slow_route(1.5)

    async def scenario() -> tuple[list[tuple[int, float]], int, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as ac:

            async def call() -> tuple[int, float]:
                start = time.monotonic()
                r = await ac.get("/slow")
                return r.status_code, time.monotonic() - start

            tasks = [asyncio.create_task(call()) for _ in range(5)]
            await asyncio.sleep(0.5)
            health = (await ac.get("/api/health-check")).status_code
            ready = (await ac.get("/api/health-check", params={"ready": 1})).status_code
            return list(await asyncio.gather(*tasks)), health, ready

    results, health, ready = asyncio.run(scenario())
    statuses = sorted(s for s, _ in results)
    assert statuses == [200, 200, 503, 503, 503]
    assert all(elapsed < 1.0 for s, elapsed in results if s == 503)
    # Liveness stays 200; readiness says the worker is refusing work.
    assert (health, ready) == (200, 503)


def test_requests_that_only_wait_do_not_count_as_in_flight(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "max_in_flight", 2)
    monkeypatch.setattr(middleware.load, "last_overload", 0.0)  # no 503 in this test yet
    event = make_event(client, login(client, make_organizer(session)["username"]))
    guests = [bearer(register(client, event["code"], f"waiter{i}")) for i in range(4)]
    for headers in guests:
        r = client.post(
            "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=headers
        )
        assert r.status_code == 202
    app = _app_with_a_slow_route(0.0)

    async def scenario() -> tuple[list[int], int, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as ac:
            # No face worker runs: each long-poll waits its full time, one more every 0.2 s.
            polls = []
            for h in guests:
                polls.append(asyncio.create_task(ac.get("/api/selfie", params={"wait": 2}, headers=h)))
                await asyncio.sleep(0.2)
            other = (await ac.get("/slow")).status_code
            ready = (await ac.get("/api/health-check", params={"ready": 1})).status_code
            return [r.status_code for r in await asyncio.gather(*polls)], other, ready

    polls, other, ready = asyncio.run(scenario())
    assert polls == [200] * 4 and other == 200 and ready == 200
