"""Gunicorn settings: ``gunicorn main:app -c gunicorn_config.py``.

Every value can be overridden by the environment. Workers are Uvicorn workers; each
builds its own database engine after the fork (see ``app.core.database``).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104
workers = int(os.environ.get("WEB_CONCURRENCY", "8"))
worker_class = "uvicorn_worker.UvicornWorker"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
preload_app = False
cpu_count = multiprocessing.cpu_count()


# The embedded face-worker pool: one per server instance (not one per web worker), so
# `make run` needs no second command. Set EMBEDDED_FACE_WORKERS=false when the face
# workers run elsewhere (`python -m app.worker` on other processes or machines).
_face_pool: subprocess.Popen[bytes] | None = None


def on_starting(server: object) -> None:
    global _face_pool
    if os.environ.get("EMBEDDED_FACE_WORKERS", "true").lower() in ("0", "false", "no"):
        return
    _face_pool = subprocess.Popen([sys.executable, "-m", "app.worker"])


def on_exit(server: object) -> None:
    if _face_pool is not None and _face_pool.poll() is None:
        _face_pool.terminate()
        try:
            _face_pool.wait(timeout=35)
        except subprocess.TimeoutExpired:
            _face_pool.kill()
