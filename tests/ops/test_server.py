"""The real server under Gunicorn: statistics over every worker, no 'database is locked'
with several workers on SQLite, start-up checks of gunicorn_config.py."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.ops import server as checks
from tests.conftest import IS_POSTGRES
from tests.helpers import ops_headers
from tools.accounts import PASSWORD, create_organizer_cli
from tools.harness.server import free_port, running_server
from tools.paths import ROOT

pytestmark = pytest.mark.slow  # real servers / worker processes


@pytest.fixture(scope="module")
def gunicorn() -> Iterator[tuple[str, dict[str, str]]]:
    from tests.conftest import truncate_all

    truncate_all()
    with running_server(workers=3, env={"EMBEDDED_FACE_WORKERS": "false"}) as server:
        yield server
    truncate_all()


def _fresh_connection_get(base: str, path: str) -> httpx.Response:
    # A new connection per request, so the kernel spreads them over the workers.
    with httpx.Client(base_url=base, timeout=30, headers={"Connection": "close"}) as c:
        return c.get(path)


def test_stats_count_the_requests_served_by_every_worker(gunicorn: tuple[str, dict[str, str]]) -> None:
    base, env = gunicorn
    ops = ops_headers(env["DATA_DIR"])
    before = httpx.get(f"{base}/api/stats", headers=ops, timeout=30).json()["requests"]["endpoints"][
        "GET /api/health-check"
    ]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda _: _fresh_connection_get(base, "/api/health-check").status_code, range(90))
        )
    assert statuses == [200] * 90
    stats = httpx.get(f"{base}/api/stats", headers=ops, timeout=30).json()
    health = stats["requests"]["endpoints"]["GET /api/health-check"]
    assert health["total"]["count"] == before["total"]["count"] + 90
    assert health["last_minute"]["count"] >= 90
    assert health["total"]["p95_ms"] is not None and health["total"]["mean_ms"] > 0
    serving = [w for w in stats["requests"]["workers"] if w["requests"] > 0]
    assert len(serving) >= 2, stats["requests"]["workers"]
    assert {"pending", "processing", "failed"} <= set(stats["face_jobs"])
    assert stats["uptime_seconds"] > 0
    metrics = httpx.get(f"{base}/metrics", headers=ops, timeout=30).text
    line = re.search(
        r'http_requests_total\{endpoint="GET /api/health-check",method="GET",status="200"\} (\S+)', metrics
    )
    assert line and float(line.group(1)) == health["total"]["count"]


def test_several_workers_on_one_database_never_answer_500(gunicorn: tuple[str, dict[str, str]]) -> None:
    base, env = gunicorn
    create_organizer_cli(env)
    with httpx.Client(base_url=base, timeout=30) as c:
        token = c.post("/api/login", json={"login": "boss", "password": PASSWORD}).json()["access_token"]
        code = c.post(
            "/api/events", json={"name": "Busy"}, headers={"Authorization": f"Bearer {token}"}
        ).json()["code"]

    def journey(i: int) -> list[int]:
        with httpx.Client(base_url=base, timeout=60, headers={"Connection": "close"}) as c:
            body = {
                "event_code": code,
                "username": f"busy{i}",
                "email": f"busy{i}@example.com",
                "password": PASSWORD,
                "accept_face_processing": True,
            }
            register = c.post("/api/register-with-event-code", json=body)
            login = c.post("/api/login", json={"login": f"busy{i}", "password": PASSWORD})
            token = login.json().get("access_token", "")
            join = c.post(
                "/api/join-event", json={"code": code}, headers={"Authorization": f"Bearer {token}"}
            )
            return [register.status_code, login.status_code, join.status_code]

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(journey, range(48)))
    assert all(r == [201, 200, 200] for r in results), results


def test_a_port_in_use_stops_the_start_with_a_clear_message() -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "EMBEDDED_FACE_WORKERS": "false"}
        gunicorn = str(os.path.join(os.path.dirname(sys.executable), "gunicorn"))
        done = subprocess.run(
            [gunicorn, "main:app", "-c", "gunicorn_config.py"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"Port {port} on 127.0.0.1 is already in use" in done.stderr
    assert f"PORT={port + 1}" in done.stderr


def test_the_open_files_limit_is_raised_when_allowed() -> None:
    code = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "from app.ops.server import raise_open_files_limit\n"
        "print(raise_open_files_limit(4096))\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    message, limit = out.stdout.strip().splitlines()
    assert "raised from 256" in message
    assert int(limit) > 256


def test_the_original_pool_settings_are_flagged_with_a_suggestion() -> None:
    budget = checks.Budget(workers=8, pool_size=30, max_overflow=70, face_workers=2)
    fits, lines = checks.budget_report(budget, (100, 3, 5))
    text = "\n".join(lines)
    assert not fits
    assert "= 806 at most" in text and "92 available" in text
    pool, overflow = budget.suggestion(92)
    assert 8 * (pool + overflow) + 2 <= 92
    assert f"DB_POOL_SIZE={pool} DB_MAX_OVERFLOW={overflow}" in text
    assert checks.budget_report(checks.Budget(8, 5, 5, 2), (100, 3, 5))[0]


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL only")
def test_the_connection_budget_reads_the_real_max_connections() -> None:
    capacity = checks.postgres_capacity(os.environ["DATABASE_URL"])
    assert capacity is not None
    max_connections, reserved, in_use = capacity
    assert max_connections >= 10 and 0 <= reserved < max_connections and in_use >= 0


def test_a_starting_server_removes_only_the_metrics_of_its_own_hosts_dead_servers(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    folders = {
        "alive": tmp_path / "metrics" / f"{host}-{os.getppid()}",  # a server of this host still running
        "other host": tmp_path / "metrics" / f"elsewhere-{os.getpid()}",  # sharing the folder by mistake
        "dead": tmp_path / "metrics" / f"{host}-{int(dead.stdout)}",
    }
    for folder in folders.values():
        folder.mkdir(parents=True)
        (folder / "counter_1.db").write_bytes(b"figures")
    mine = checks.metrics_folder(tmp_path)
    assert mine.name == f"{host}-{os.getpid()}" and mine.is_dir()
    assert (folders["alive"] / "counter_1.db").exists() and (folders["other host"] / "counter_1.db").exists()
    assert not folders["dead"].exists()
