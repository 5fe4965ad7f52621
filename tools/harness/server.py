"""The real service as ``make run`` starts it (Gunicorn with ``gunicorn_config.py``), migrated,
on a scratch DATA_DIR and a free port, for a test or a benchmark; and free ports for others."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tools.paths import ROOT


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (another process may still take it before we do)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    workers: int = 2, env: dict[str, str] | None = None
) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (base_url, environment); the database is migrated, the server stopped after."""
    data = (env or {}).get("DATA_DIR") or tempfile.mkdtemp(prefix="bench-")
    host = (env or {}).get("HOST", "127.0.0.1")
    port = int((env or {}).get("PORT") or free_port())
    environ = {
        **os.environ,
        "DATA_DIR": str(data),
        "HOST": host,
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "LOG_LEVEL": "warning",
        **(env or {}),
    }
    environ.setdefault("DATABASE_URL", "")
    subprocess.run([sys.executable, "-m", "app", "migrate"], cwd=ROOT, env=environ, check=True)
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    proc = subprocess.Popen(  # noqa: S603 - the venv's gunicorn, our arguments
        [gunicorn, "main:app", "-c", "gunicorn_config.py", "--access-logfile", "/dev/null"],
        cwd=ROOT,
        env=environ,
    )
    base = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/health-check", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        yield base, environ
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a client kept a stream open past the graceful timeout
            proc.kill()
            proc.wait(timeout=30)
