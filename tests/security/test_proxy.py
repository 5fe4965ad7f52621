"""Behind a reverse proxy the throttles count the client's real address, and a client that
talks to the server directly cannot choose it with a forged X-Forwarded-For (real Gunicorn)."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import httpx
import pytest

from app.events.service import CODE_ALPHABET
from tools.harness.server import running_server

pytestmark = [pytest.mark.slow, pytest.mark.once]  # real servers


def _wrong_code_statuses(base: str, forwarded_for: list[str]) -> list[int]:
    statuses = []
    with httpx.Client(base_url=base, timeout=30) as c:
        for address in forwarded_for:
            code = "NOPE-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
            r = c.post("/api/check-event-code", json={"code": code}, headers={"X-Forwarded-For": address})
            statuses.append(r.status_code)
    return statuses


def test_a_forged_forwarded_for_is_ignored_unless_the_proxy_is_trusted(clean_db: None) -> None:
    env = {"EMBEDDED_FACE_WORKERS": "false", "THROTTLE_CODE_FAILURES_PER_ADDRESS": "3/minute"}
    forged = [f"203.0.113.{i}" for i in range(6)]
    with running_server(workers=1, env=env) as (base, server_env):
        assert _wrong_code_statuses(base, forged) == [404, 404, 404, 429, 429, 429]
        r = httpx.get(f"{base}/api/health-check", timeout=30)
        assert "server" not in r.headers and r.headers["x-content-type-options"] == "nosniff"
        data = Path(server_env["DATA_DIR"])
        for path in (data / "ops_token", data / "secret_key"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    with running_server(workers=1, env={**env, "FORWARDED_ALLOW_IPS": "127.0.0.1"}) as (base, _):
        # The proxy (here: loopback) is trusted: each client address is counted on its own.
        assert _wrong_code_statuses(base, forged) == [404] * 6
        assert _wrong_code_statuses(base, ["198.51.100.9"] * 4) == [404, 404, 404, 429]
