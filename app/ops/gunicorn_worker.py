"""Gunicorn's worker class for the web workers (``worker_class`` in ``gunicorn_config.py``):
Uvicorn's, serving HTTP through ``app.ops.protocol.HeaderTimeoutProtocol`` (a time limit on
slow request headers). Not to be confused with ``app/worker.py``, the face-worker pool."""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker

from app.ops.protocol import HeaderTimeoutProtocol


class WebWorker(UvicornWorker):
    # No "server: uvicorn" header: what runs the service is nobody else's business.
    CONFIG_KWARGS: dict[str, Any] = {"loop": "auto", "http": HeaderTimeoutProtocol, "server_header": False}
