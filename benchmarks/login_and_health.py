"""Cost of argon2id and login, and /api/health-check latency while 20 logins run at once.

Usage: .venv/bin/python -m benchmarks.login_and_health [--workers 2] [--seconds 15]
Starts the real server (Gunicorn, gunicorn_config.py) on a scratch SQLite database,
or on DATABASE_URL when set.
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from benchmarks.figures import percentile
from tools.accounts import PASSWORD, create_organizer_cli
from tools.harness.server import running_server


def argon2_cost(rounds: int = 20) -> tuple[float, float]:
    from app.core import security

    start = time.perf_counter()
    for _ in range(rounds):
        h = security.hash_password(PASSWORD)
    hash_ms = (time.perf_counter() - start) / rounds * 1000
    start = time.perf_counter()
    for _ in range(rounds):
        security.verify_password(h, PASSWORD)
    return hash_ms, (time.perf_counter() - start) / rounds * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()

    hash_ms, verify_ms = argon2_cost()
    print(f"argon2id hash: {hash_ms:.1f} ms, verify: {verify_ms:.1f} ms (one thread)")

    with running_server(workers=args.workers) as (base, env):
        create_organizer_cli(env, "org")
        with httpx.Client(base_url=base, timeout=30) as c:
            token = c.post("/api/login", json={"login": "org", "password": PASSWORD}).json()["access_token"]
            code = c.post(
                "/api/events", json={"name": "Bench"}, headers={"Authorization": f"Bearer {token}"}
            ).json()["code"]
            for i in range(args.concurrency):
                r = c.post(
                    "/api/register-with-event-code",
                    json={
                        "event_code": code,
                        "username": f"guest{i}",
                        "email": f"g{i}@example.com",
                        "password": PASSWORD,
                        "accept_face_processing": True,
                    },
                )
                assert r.status_code == 201, r.text

        # One login alone, sequentially: the latency a guest sees on an idle server.
        with httpx.Client(base_url=base, timeout=30) as c:
            idle = []
            for _ in range(10):
                t = time.perf_counter()
                assert c.post("/api/login", json={"login": "guest0", "password": PASSWORD}).status_code == 200
                idle.append((time.perf_counter() - t) * 1000)
        print(
            f"login on an idle server: p50 {percentile(idle, 50):.1f} ms, p95 {percentile(idle, 95):.1f} ms"
        )

        stop = threading.Event()
        login_ms: list[float] = []
        errors = 0

        def login_loop(i: int) -> None:
            nonlocal errors
            with httpx.Client(base_url=base, timeout=30) as c:
                while not stop.is_set():
                    t = time.perf_counter()
                    r = c.post("/api/login", json={"login": f"guest{i}", "password": PASSWORD})
                    login_ms.append((time.perf_counter() - t) * 1000)
                    errors += r.status_code != 200

        health_ms: list[float] = []
        with ThreadPoolExecutor(args.concurrency) as pool:
            for i in range(args.concurrency):
                pool.submit(login_loop, i)
            time.sleep(1)  # let the logins saturate the workers
            with httpx.Client(base_url=base, timeout=30) as c:
                end = time.monotonic() + args.seconds
                while time.monotonic() < end:
                    t = time.perf_counter()
                    assert c.get("/api/health-check").status_code == 200
                    health_ms.append((time.perf_counter() - t) * 1000)
                    time.sleep(0.05)
            stop.set()

    print(
        f"{args.concurrency} concurrent logins for {args.seconds:.0f} s on {args.workers} workers: "
        f"{len(login_ms)} logins, {len(login_ms) / (args.seconds + 1):.1f}/s, errors {errors}, "
        f"p50 {percentile(login_ms, 50):.0f} ms, p95 {percentile(login_ms, 95):.0f} ms"
    )
    print(
        f"/api/health-check meanwhile: {len(health_ms)} requests, p50 {percentile(health_ms, 50):.1f} ms, "
        f"p95 {percentile(health_ms, 95):.1f} ms, max {max(health_ms):.1f} ms"
    )


if __name__ == "__main__":
    main()
