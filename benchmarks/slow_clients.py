"""A login while 20 slow clients trickle their bodies in, against the real server.

    .venv/bin/python -m benchmarks.slow_clients

Gunicorn with one web worker and ``MAX_IN_FLIGHT=10``; 20 connections send their headers and
then one byte of a declared 1000-byte body every 5 s (``tools.harness.slow_clients.Trickle``,
the scenario of ``tests/ops/test_slow_clients.py``). Prints the login time with and without
them, and how long the slow connections were held before the server answered 408 and closed
them.
"""

from __future__ import annotations

import time

import httpx

from tools.accounts import PASSWORD, create_organizer_cli
from tools.harness.server import running_server
from tools.harness.slow_clients import Trickle


def main() -> None:
    env = {"EMBEDDED_FACE_WORKERS": "false", "MAX_IN_FLIGHT": "10", "DATABASE_URL": ""}
    with running_server(workers=1, env=env) as (base, environ):
        create_organizer_cli(environ, "slowboss")
        body = {"login": "slowboss", "password": PASSWORD}

        def login_seconds() -> float:
            started = time.monotonic()
            assert httpx.post(f"{base}/api/login", json=body, timeout=60).status_code == 200
            return time.monotonic() - started

        quiet = min(login_seconds() for _ in range(5))
        with Trickle(base, 20, every=5.0) as trickle:
            time.sleep(1)
            during = login_seconds()
        cut = sorted(trickle.closed_after)
        answers = {a.split(b"\r\n", 1)[0].decode() for a in trickle.answers}
        print(f"login alone: {quiet * 1000:.0f} ms; with 20 trickling bodies: {during * 1000:.0f} ms")
        print(f"slow connections answered {answers} after {cut[0]:.1f}-{cut[-1]:.1f} s")


if __name__ == "__main__":
    main()
