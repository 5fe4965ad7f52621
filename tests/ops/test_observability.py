"""Statistics, the database probe, the ops token and the in-flight bound, in process."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.ops import stats
from tests.helpers import bearer, fixture_bytes, login, make_event, make_organizer, register


def test_percentiles_are_within_five_percent() -> None:
    series = stats.Series()
    for ms in range(1, 1001):
        series.add(float(ms), error=False)
    summary = series.summary()
    assert summary["count"] == 1000 and summary["mean_ms"] == pytest.approx(500.5)
    assert summary["p95_ms"] == pytest.approx(950, rel=0.05)
    assert summary["p99_ms"] == pytest.approx(990, rel=0.05)


def test_a_dead_worker_keeps_its_totals_but_not_its_in_flight(tmp_path: Path) -> None:
    now = time.time()
    dead = {
        "pid": 2**22 + 12345,
        "written_at": now,
        "in_flight": 7,
        "rejected_overload": 0,
        "totals": {"GET /x": {"count": 5, "errors": 1, "total_ms": 50.0, "buckets": {"48": 5}}},
        "seconds": {
            str(int(now)): {"GET /x": {"count": 5, "errors": 1, "total_ms": 50.0, "buckets": {"48": 5}}}
        },
    }
    (tmp_path / "dead.json").write_text(json.dumps(dead))
    merged = stats.merged(tmp_path)
    assert merged["endpoints"]["GET /x"]["total"]["count"] == 5
    assert merged["endpoints"]["GET /x"]["last_minute"]["errors"] == 1
    assert merged["in_flight"] == stats.worker_stats.in_flight
    assert [w["alive"] for w in merged["workers"] if w["pid"] == dead["pid"]] == [False]
    assert any(w["pid"] == os.getpid() for w in merged["workers"])


def test_stats_report_endpoints_jobs_and_guests(client: TestClient, session: Session) -> None:
    org = login(client, make_organizer(session)["username"])
    event = make_event(client, org)
    register(client, event["code"], "alice")
    client.post(
        f"/api/events/{event['id']}/photos",
        files=[("files", ("a.png", fixture_bytes("Tom_Hanks_54745.png")))],
        headers=org,
    )
    body = client.get("/api/stats").json()
    assert body["guests_registered"] == 1 and body["events"] == 1
    assert body["face_jobs"]["pending"] == 1 and body["face_jobs"]["photos"]["pending"] == 1
    assert body["requests"]["endpoints"]["POST /api/register-with-event-code"]["total"]["count"] >= 1


def test_db_raw_test_times_a_round_trip_and_an_indexed_query(client: TestClient) -> None:
    body = client.get("/api/db-raw-test").json()
    assert body["raw_select_1_ms"] >= 0 and body["indexed_query"]["index"] == "uq_users_username_lower"
    pool = body["pool"]
    assert pool["class"] == "CountingQueuePool"
    assert pool["size"] == get_settings().db_pool_size and pool["waiting"] == 0
    assert {"checked_out", "overflow", "timeout_seconds"} <= set(pool)


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
    r = client.get("/metrics")
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
    monkeypatch.setattr(stats.worker_stats, "last_overload", 0.0)  # no 503 in this test yet
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
