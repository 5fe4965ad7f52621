"""Gunicorn's settings and hooks: ``gunicorn main:app -c gunicorn_config.py``.

Nothing is read here: every value comes from the validated settings, the application's
(``app/core/config.py``) and the server's (``app/core/server_config.py``: HOST, PORT,
WEB_CONCURRENCY, GUNICORN_*...), and an invalid one stops the start naming the variable.
The hooks delegate to ``app/ops/startup.py``, which prints the effective configuration once
when the server is ready. Each web worker builds its own database engine after the fork
(``app.core.database``); the master starts one embedded face-worker pool for the whole server.
"""

from __future__ import annotations

import os
from typing import Any

from app.ops import startup

settings, server_settings = startup.load_settings()
# Everything the server writes (database, photos, selfies, secrets) is for its own user only:
# files 0600, folders 0700. Workers and the face pool inherit it.
umask = 0o077
os.umask(umask)

bind = server_settings.bind
workers = server_settings.web_concurrency
# Uvicorn workers with a time limit on slow request headers (app/ops/protocol.py).
worker_class = startup.WORKER_CLASS
forwarded_allow_ips = server_settings.forwarded_allow_ips
timeout = server_settings.gunicorn_timeout
graceful_timeout = server_settings.gunicorn_graceful_timeout
keepalive = server_settings.gunicorn_keepalive
backlog = server_settings.gunicorn_backlog
max_requests = server_settings.gunicorn_max_requests
max_requests_jitter = server_settings.gunicorn_max_requests_jitter
worker_tmp_dir = startup.heartbeat_dir()
preload_app = False

startup.make_log_dir(server_settings)
accesslog = server_settings.access_log_file
errorlog = server_settings.error_log_file
loglevel = server_settings.log_level

# This node's own folder, off the data disk (a full data disk must not kill new workers):
# the metrics files, before any worker imports prometheus_client, and the control socket.
run_dir = startup.prepare_run_dir(settings)
control_socket = startup.control_socket_path(run_dir)
metrics = startup.prepare_metrics(run_dir)
master = startup.Master(
    settings=settings, server=server_settings, face_workers=startup.embedded_face_workers(settings)
)


def on_starting(server: Any) -> None:
    master.start(server.log)


def when_ready(server: Any) -> None:
    settings.ops_key()  # generated now, once, if it does not exist
    server.log.info(master.summary(worker_class=worker_class, heartbeat_dir=worker_tmp_dir))


def post_fork(server: Any, worker: Any) -> None:
    startup.route_access_log(worker.log.access_log.handlers)


def child_exit(server: Any, worker: Any) -> None:
    metrics.mark_dead(worker.pid)


def on_exit(server: Any) -> None:
    metrics.remove()
    master.stop()
    startup.forget_run_dir(settings.node_dir)
