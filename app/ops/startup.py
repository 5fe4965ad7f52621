"""What the Gunicorn server does at start and at exit; the hooks of ``gunicorn_config.py``
delegate here. The master's checks before binding (port, open files, storage, connection
budget), the embedded face-worker pool, the node's run folder (off the data disk) with the
server's metrics folder and control socket, the access log of each web worker, and the
one-time configuration summary: ``startup_summary``, a pure function of the settings and of
the facts it is given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from app.core import storage
from app.core.config import Settings, get_settings
from app.core.server_config import ServerSettings, explain, get_server_settings
from app.ops.server import (
    Budget,
    RunDirError,
    budget_report,
    control_socket,
    masked_url,
    metrics_folder,
    pgbouncer_limits,
    port_problem,
    postgres_capacity,
    private_dir,
    raise_open_files_limit,
    same_disk,
)

WORKER_CLASS = "app.ops.gunicorn_worker.WebWorker"
_SHARED_MEMORY = "/dev/shm"  # noqa: S108
FACE_POOL_STOP_SECONDS = 35


class Log(Protocol):
    """The part of Gunicorn's logger the start-up uses."""

    def info(self, msg: str, *args: object) -> None: ...

    def error(self, msg: str, *args: object) -> None: ...


def load_settings() -> tuple[Settings, ServerSettings]:
    """The application's settings and the server's, or exit naming every invalid variable of
    both at once."""
    problems = []
    try:
        settings = get_settings()
    except ValidationError as exc:
        problems.append(exc)
    try:
        server = get_server_settings()
    except ValidationError as exc:
        problems.append(exc)
    if problems:
        raise SystemExit(explain(*problems))
    return settings, server


def heartbeat_dir() -> str | None:
    """Gunicorn's ``worker_tmp_dir``: in memory, so a slow disk never makes the master kill
    workers whose heartbeat file it could not touch in time."""
    return _SHARED_MEMORY if os.path.isdir(_SHARED_MEMORY) else None


def embedded_face_workers(settings: Settings) -> int:
    """The face-worker processes the master starts: FACE_WORKERS, or none when
    EMBEDDED_FACE_WORKERS=false (they run elsewhere: ``python -m app.worker``)."""
    return settings.face_workers if settings.embedded_face_workers else 0


def make_log_dir(server: ServerSettings) -> None:
    """GUNICORN_LOG_DIR, created before Gunicorn opens its files there."""
    if server.gunicorn_log_dir:
        server.gunicorn_log_dir.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class ServerMetrics:
    folder: Path
    mark_dead: Callable[[int], None]

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def prepare_run_dir(settings: Settings) -> Path:
    """RUN_DIR, this node's own folder, made private; or exit saying why it cannot be."""
    try:
        return private_dir(settings.node_dir)
    except (RunDirError, OSError) as exc:
        raise SystemExit(f"RUN_DIR: {exc}") from None


def control_socket_path(run_dir: Path) -> str:
    """Gunicorn's ``control_socket``: this server's own, in RUN_DIR (Gunicorn's default,
    ~/.gunicorn/gunicorn.ctl, is shared by every server of the user and deleted by the first
    that stops)."""
    return str(control_socket(run_dir))


def prepare_metrics(node_dir: Path) -> ServerMetrics:
    """prometheus-client's multiprocess mode in a folder of this server's own. Called before
    any process imports prometheus_client, which reads the folder's name at import."""
    folder = metrics_folder(node_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    # Imported now, not when a worker exits: that hook runs while the master reaps workers,
    # and a first import there, interrupted by the next worker's exit, fails half-initialised.
    from prometheus_client import multiprocess

    return ServerMetrics(folder=folder, mark_dead=multiprocess.mark_process_dead)


def route_access_log(handlers: list[logging.Handler]) -> None:
    """In a web worker: access lines with the response time come from the app's middleware
    ("app.access") into Gunicorn's access log; Uvicorn's own, without timing, is silenced."""
    access = logging.getLogger("app.access")
    access.handlers = handlers
    access.setLevel(logging.INFO)
    access.propagate = False
    logging.getLogger("uvicorn.access").disabled = True


@dataclass(kw_only=True)
class Master:
    """The master's own work: the checks before binding, the face-worker pool, the stop."""

    settings: Settings
    server: ServerSettings
    face_workers: int
    check_lines: list[str] = field(default_factory=list)
    face_pool: subprocess.Popen[bytes] | None = None

    def start(self, log: Log) -> None:
        """Fail clearly, or fix, what the original plan's troubleshooting section had to
        explain; then start the face workers."""
        problem = port_problem(self.server.host, self.server.port)
        if problem:
            log.error(problem)
            sys.exit(1)
        self.check_lines.append(raise_open_files_limit(self.server.nofile_limit))
        os.environ["SERVER_STARTED_AT"] = str(time.time())
        try:
            storage.wait_until_reachable(timeout=10)
        except Exception as exc:
            log.error("storage: %s cannot be reached: %s", storage.backend().description, exc)
            sys.exit(1)
        if same_disk(self.settings.node_dir, self.settings.data_dir):
            log.error(
                "RUN_DIR %s is on the data disk: when uploads fill it, new workers die mapping their "
                "metrics files there. Leave RUN_DIR unset (a folder in memory) or point it at a tmpfs.",
                self.settings.node_dir,
            )
        fits, lines = self._connection_budget()
        for line in lines:
            (log.info if fits else log.error)(line)
        self.check_lines.extend(lines[:2])
        if self.face_workers:
            command = [sys.executable, "-m", "app.worker", "--processes", str(self.face_workers)]
            self.face_pool = subprocess.Popen(command)  # noqa: S603

    def _connection_budget(self) -> tuple[bool, list[str]]:
        settings = self.settings
        budget = Budget(
            workers=self.server.web_concurrency,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            face_workers=self.face_workers,
        )
        capacity = None if settings.is_sqlite else postgres_capacity(settings.sqlalchemy_url)
        behind_pooler = settings.database_pooler == "pgbouncer"
        pooler = pgbouncer_limits(settings.sqlalchemy_url) if behind_pooler else None
        return budget_report(budget, capacity, pooler=pooler, behind_pooler=behind_pooler)

    def summary(self, *, worker_class: str, heartbeat_dir: str | None) -> str:
        return startup_summary(
            settings=self.settings,
            server=self.server,
            face_workers=self.face_workers,
            storage_description=storage.backend().description,
            worker_class=worker_class,
            heartbeat_dir=heartbeat_dir,
            check_lines=self.check_lines,
            redis_answers=redis_answers(self.settings),
        )

    def stop(self) -> None:
        pool = self.face_pool
        if pool is None or pool.poll() is not None:
            return
        pool.terminate()
        try:
            pool.wait(timeout=FACE_POOL_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pool.kill()


def forget_run_dir(run_dir: Path) -> None:
    """At exit: this node's runtime folder goes when nothing is left in it (it lives in
    memory, and each DATA_DIR has its own)."""
    with contextlib.suppress(OSError):
        run_dir.rmdir()


def redis_answers(settings: Settings) -> bool:
    """Whether the throttles' Redis answers a ping now (asked directly: importing the throttles
    here would load prometheus-client in the master before its multiprocess folder is set)."""
    if not settings.redis_url:
        return True
    import redis

    try:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return bool(client.ping())
    except redis.RedisError:
        return False


def startup_summary(
    *,
    settings: Settings,
    server: ServerSettings,
    face_workers: int,
    storage_description: str,
    worker_class: str = WORKER_CLASS,
    heartbeat_dir: str | None = None,
    check_lines: Sequence[str] = (),
    redis_answers: bool = True,
) -> str:
    """The effective configuration, printed once when the server is ready.
    ``storage_description`` is the storage backend's; ``check_lines`` what the start-up checks
    found (open files, connection budget); ``redis_answers`` whether the throttles' Redis
    answered a ping."""
    s = settings
    rows = [
        ("bind", ", ".join(server.bind)),
        ("workers", f"{server.web_concurrency} x {worker_class}"),
        (
            "timeouts",
            f"timeout {server.gunicorn_timeout}s, graceful {server.gunicorn_graceful_timeout}s, "
            f"keepalive {server.gunicorn_keepalive}s",
        ),
        ("max_requests", f"{server.gunicorn_max_requests} (+ jitter {server.gunicorn_max_requests_jitter})"),
        ("worker_tmp_dir", str(heartbeat_dir)),
        ("database", masked_url(s.sqlalchemy_url)),
        ("storage", storage_description + _photo_delivery(s)),
        ("run dir", f"{s.node_dir} (this node's own: metrics, wake-up and control sockets)"),
        ("job wake-ups", _job_wake_ups(s)),
        (
            "db pool",
            f"DB_POOL_SIZE {s.db_pool_size}, DB_MAX_OVERFLOW {s.db_max_overflow}, "
            f"DB_POOL_TIMEOUT {s.db_pool_timeout}s",
        ),
        ("in flight", f"at most {s.max_in_flight} requests per worker, then 503"),
        (
            "slow clients",
            f"headers and body within {s.request_read_timeout:g}s (+1s per {s.request_min_rate} bytes "
            f"received), then 408; keep-alive {server.gunicorn_keepalive}s",
        ),
        ("face workers", f"{face_workers} embedded" if face_workers else "external (python -m app.worker)"),
        ("logs", f"access {server.access_log_file or 'off'}, errors {server.error_log_file}"),
        ("ops endpoints", _ops_endpoints(s)),
        ("throttles", _throttles(s, redis_answers=redis_answers)),
        ("mail", _mail(s)),
        (
            "proxy",
            f"X-Forwarded-For trusted from: {server.forwarded_allow_ips or 'nobody'} (FORWARDED_ALLOW_IPS)",
        ),
    ]
    if s.is_sqlite and server.web_concurrency > 1:
        rows.append(("sqlite", "WAL + busy_timeout: several workers share the file safely"))
    width = max(len(name) for name, _ in rows)
    return "configuration:\n" + "\n".join(
        [f"  {name:<{width}}  {value}" for name, value in rows] + [f"  {line}" for line in check_lines]
    )


def _mail(settings: Settings) -> str:
    if not settings.smtp_url:
        return f"not sent (no SMTP_URL): written to {settings.mail_dir} and logged; links {settings.site_url}"
    server = masked_url(settings.smtp_url)
    return f"{server}, from {settings.mail_from or 'no-reply at PUBLIC_URL'}, links {settings.site_url}"


def _photo_delivery(settings: Settings) -> str:
    if not settings.storage_is_s3:
        return ""
    return ", presigned URLs" if settings.storage_presigned_urls else ", streamed"


def _job_wake_ups(settings: Settings) -> str:
    if settings.is_sqlite:
        return "local sockets"
    if settings.listen_url:
        return "LISTEN/NOTIFY"
    return f"polling every {settings.job_idle_poll_seconds:g}s (set DATABASE_LISTEN_URL)"


def _ops_endpoints(settings: Settings) -> str:
    if settings.ops_token:
        return "protected by OPS_TOKEN"
    return f"protected by the token in {settings.ops_token_file} (generated; or set OPS_TOKEN)"


def _throttles(settings: Settings, *, redis_answers: bool) -> str:
    if not settings.throttles_enabled:
        return "off"
    if settings.redis_url:
        if not redis_answers:
            return "Redis configured but NOT answering: each worker counts on its own until it does"
        return "Redis (shared by all workers)"
    return "in memory, per worker (set REDIS_URL to share)"
