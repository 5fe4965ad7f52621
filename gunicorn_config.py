"""Gunicorn settings and hooks: ``gunicorn main:app -c gunicorn_config.py``.

Every value can be overridden by the environment (see the README, "Operations") and the
effective configuration is printed once when the server is ready. Each web worker builds
its own database engine after the fork (``app.core.database``); the master starts one
embedded face-worker pool for the whole server.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from app.core import storage
from app.core.config import get_settings
from app.ops import server as checks


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _flag(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).strip().lower() not in ("0", "false", "no", "off", "")


settings = get_settings()
# Everything the server writes (database, photos, selfies, secrets) is for its own user only:
# files 0600, folders 0700. Workers and the face pool inherit it.
umask = 0o077
os.umask(umask)
# Loopback unless told: a server reachable from the network is an operator's decision (HOST=0.0.0.0).
host = os.environ.get("HOST", "127.0.0.1")
port = _int("PORT", 8000)

bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
workers = _int("WEB_CONCURRENCY", 8)  # the original plan's 8; see docs/PERFORMANCE.md
# Uvicorn workers with a time limit on slow request headers (app/ops/protocol.py).
worker_class = "app.ops.worker.Worker"
# X-Forwarded-For / -Proto are believed only from these addresses (the reverse proxy); by
# default from none, so a client cannot pick the address the throttles count it under.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
backlog = _int("GUNICORN_BACKLOG", 2048)
# Recycle workers now and then (leaks in native libraries), staggered so they never all
# restart at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 10000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 1000)
# The heartbeat file lives in memory: a slow disk must not make the master kill workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
preload_app = False

_log_dir = os.environ.get("GUNICORN_LOG_DIR")
if _log_dir:
    Path(_log_dir).mkdir(parents=True, exist_ok=True)
accesslog = os.path.join(_log_dir, "access.log") if _log_dir else ("-" if _flag("ACCESS_LOG", True) else None)
errorlog = os.path.join(_log_dir, "error.log") if _log_dir else "-"
loglevel = os.environ.get("LOG_LEVEL", "info")

face_workers = settings.face_workers if _flag("EMBEDDED_FACE_WORKERS", settings.embedded_face_workers) else 0

# prometheus-client multiprocess mode, in a folder of this server's own: set before any
# worker imports prometheus_client.
_prometheus_dir = checks.metrics_folder(settings.node_dir)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_prometheus_dir)
# Imported now, not in child_exit: that hook runs while the master reaps workers, and a first
# import there, interrupted by the next worker's exit, fails half-initialised.
from prometheus_client import multiprocess  # noqa: E402

_face_pool: subprocess.Popen[bytes] | None = None
_summary: list[str] = []


def on_starting(server: Any) -> None:
    """Master, before binding: fail clearly or fix what the original plan's troubleshooting
    section had to explain, then start the face workers."""
    global _face_pool
    log = server.log
    problem = checks.port_problem(host, port)
    if problem:
        log.error(problem)
        sys.exit(1)
    _summary.append(checks.raise_open_files_limit(_int("NOFILE_LIMIT", 65536)))

    os.environ["SERVER_STARTED_AT"] = str(time.time())

    try:
        storage.wait_until_reachable(timeout=10)
    except Exception as exc:
        log.error("storage: %s cannot be reached: %s", storage.backend().description, exc)
        sys.exit(1)

    budget = checks.Budget(workers, settings.db_pool_size, settings.db_max_overflow, face_workers)
    capacity = None if settings.is_sqlite else checks.postgres_capacity(settings.sqlalchemy_url)
    behind_pooler = settings.database_pooler == "pgbouncer"
    pooler = checks.pgbouncer_limits(settings.sqlalchemy_url) if behind_pooler else None
    fits, lines = checks.budget_report(budget, capacity, pooler=pooler, behind_pooler=behind_pooler)
    for line in lines:
        (log.info if fits else log.error)(line)
    _summary.extend(lines[:2])

    if face_workers:
        command = [sys.executable, "-m", "app.worker", "--processes", str(face_workers)]
        _face_pool = subprocess.Popen(command)  # noqa: S603


def when_ready(server: Any) -> None:
    """Print the effective configuration once."""
    settings.ops_key()  # generated now, once, if it does not exist
    rows = [
        ("bind", ", ".join(bind)),
        ("workers", f"{workers} x {worker_class}"),
        ("timeouts", f"timeout {timeout}s, graceful {graceful_timeout}s, keepalive {keepalive}s"),
        ("max_requests", f"{max_requests} (+ jitter {max_requests_jitter})"),
        ("worker_tmp_dir", str(worker_tmp_dir)),
        ("database", checks.masked_url(settings.sqlalchemy_url)),
        (
            "storage",
            storage.backend().description
            + (
                ""
                if not settings.storage_is_s3
                else ", presigned URLs"
                if settings.storage_presigned_urls
                else ", streamed"
            ),
        ),
        ("run dir", f"{settings.node_dir} (this node's own)"),
        (
            "job wake-ups",
            "LISTEN/NOTIFY"
            if settings.listen_url and not settings.is_sqlite
            else f"polling every {settings.job_idle_poll_seconds:g}s (set DATABASE_LISTEN_URL)"
            if not settings.is_sqlite
            else "local sockets",
        ),
        (
            "db pool",
            f"DB_POOL_SIZE {settings.db_pool_size}, DB_MAX_OVERFLOW {settings.db_max_overflow}, "
            f"DB_POOL_TIMEOUT {settings.db_pool_timeout}s",
        ),
        ("in flight", f"at most {settings.max_in_flight} requests per worker, then 503"),
        (
            "slow clients",
            f"headers and body within {settings.request_read_timeout:g}s (+1s per "
            f"{settings.request_min_rate} bytes received), then 408; keep-alive {keepalive}s",
        ),
        ("face workers", f"{face_workers} embedded" if face_workers else "external (python -m app.worker)"),
        ("logs", f"access {accesslog or 'off'}, errors {errorlog}"),
        (
            "ops endpoints",
            "protected by OPS_TOKEN"
            if settings.ops_token
            else f"protected by the token in {settings.ops_token_file} (generated; or set OPS_TOKEN)",
        ),
        (
            "throttles",
            ("off" if not settings.throttles_enabled else "")
            or (
                "Redis (shared by all workers)"
                if settings.redis_url
                else "in memory, per worker (set REDIS_URL to share)"
            ),
        ),
        ("proxy", f"X-Forwarded-For trusted from: {forwarded_allow_ips or 'nobody'} (FORWARDED_ALLOW_IPS)"),
    ]
    if settings.is_sqlite and workers > 1:
        rows.append(("sqlite", "WAL + busy_timeout: several workers share the file safely"))
    width = max(len(k) for k, _ in rows)
    server.log.info(
        "configuration:\n"
        + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
        + "".join(f"\n  {line}" for line in _summary)
    )


def post_fork(server: Any, worker: Any) -> None:
    # Access lines with the response time come from the app's middleware ("app.access");
    # uvicorn's own access log has no timing, so it is silenced.
    access = logging.getLogger("app.access")
    access.handlers = worker.log.access_log.handlers
    access.setLevel(logging.INFO)
    access.propagate = False
    logging.getLogger("uvicorn.access").disabled = True


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    shutil.rmtree(_prometheus_dir, ignore_errors=True)
    if _face_pool is not None and _face_pool.poll() is None:
        _face_pool.terminate()
        try:
            _face_pool.wait(timeout=35)
        except subprocess.TimeoutExpired:
            _face_pool.kill()
