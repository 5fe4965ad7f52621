"""Waking idle workers when work arrives, instead of having them poll every few milliseconds.

On PostgreSQL the request that queues a job runs ``pg_notify`` in its transaction (it is
delivered only if and when that transaction commits) and every worker, on any machine,
``LISTEN``s on a dedicated connection. SQLite has no such channel: each worker process
binds a Unix datagram socket under ``RUN_DIR/wake`` and a web process sends one byte to
each of them after its commit. Either way an idle worker also wakes every
``JOB_IDLE_POLL_SECONDS`` (delayed retries, expired leases, workers of other servers).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.core.config import Settings, get_settings

CHANNEL = "face_jobs"
log = logging.getLogger("app.jobs")


def wake_dir(settings: Settings) -> Path:
    return settings.node_dir / "wake"


def notify_on_commit(session: Session) -> None:
    """Wake the idle workers once ``session``'s transaction commits (never before)."""
    if session.get_bind().dialect.name == "postgresql":
        # Once per transaction: PostgreSQL folds identical notifications anyway, and a run
        # that queues thousands of mails would otherwise make thousands of round trips.
        if not session.info.get("pg_notified"):
            session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
            session.info["pg_notified"] = True
        return
    session.info["wake_workers"] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    session.info.pop("pg_notified", None)
    if session.info.pop("wake_workers", False):
        wake_local_workers()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop("wake_workers", None)
    session.info.pop("pg_notified", None)


def wake_local_workers(settings: Settings | None = None) -> int:
    """Send one byte to every worker socket of this server; how many were reached."""
    folder = wake_dir(settings or get_settings())
    try:
        paths = list(folder.iterdir())
    except FileNotFoundError:
        return 0
    reached = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for path in paths:
            try:
                sock.sendto(b"!", str(path))
                reached += 1
            except OSError:  # a worker that died, or whose buffer is full (it is awake anyway)
                continue
    return reached


def remove_stale_sockets(settings: Settings) -> None:
    """Delete sockets nobody listens on any more (workers killed before they could)."""
    folder = wake_dir(settings)
    if not folder.is_dir():
        return
    for path in folder.glob("*.sock"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect(str(path))
            except ConnectionRefusedError:
                path.unlink(missing_ok=True)
            except OSError:
                continue


class WakeListener:
    """What an idle worker waits on: ``wait(timeout)`` returns early when work is announced."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.postgres = settings.sqlalchemy_url.startswith("postgresql")
        self._listen_url = settings.listen_url if self.postgres else None
        self._conn: Any = None
        self._sock: socket.socket | None = None
        self._path: Path | None = None
        if self._listen_url:
            self._connect()
        elif not self.postgres:
            folder = wake_dir(settings)
            folder.mkdir(parents=True, exist_ok=True)
            self._path = folder / f"{name}.sock"
            self._path.unlink(missing_ok=True)
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.bind(str(self._path))
            self._sock.setblocking(False)

    def _connect(self) -> None:
        import psycopg2

        url = make_url(self._listen_url or "").set(drivername="postgresql")
        try:
            conn = psycopg2.connect(
                url.render_as_string(hide_password=False),
                connect_timeout=self.settings.db_connect_timeout,
                application_name="event-photos-wake",
            )
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"LISTEN {CHANNEL}")
        except psycopg2.Error as exc:
            log.warning("cannot listen for new jobs (will poll): %s", str(exc).strip().splitlines()[0])
            self._conn = None
            return
        self._conn = conn

    def wait(self, timeout: float) -> bool:
        """Sleep until woken or ``timeout`` seconds pass; True when woken."""
        if self.postgres:
            if self._conn is None:
                time.sleep(timeout)
                if self._listen_url:
                    self._connect()
                return False
            return self._wait_postgres(timeout)
        if self._sock is None:  # closed: nothing can wake us
            time.sleep(timeout)
            return False
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            while self._sock.recv(64):
                pass
        return True

    def _wait_postgres(self, timeout: float) -> bool:
        import psycopg2

        conn = self._conn
        try:
            if conn.notifies:
                conn.notifies.clear()
                return True
            ready, _, _ = select.select([conn], [], [], timeout)
            if not ready:
                return False
            conn.poll()
            woken = bool(conn.notifies)
            conn.notifies.clear()
            return woken
        except psycopg2.Error as exc:
            log.warning("lost the job notification connection: %s", str(exc).strip().splitlines()[0])
            with contextlib.suppress(Exception):
                conn.close()
            self._conn = None
            return False

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        if self._sock is not None:
            self._sock.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)


def listener_name(index: int) -> str:
    return f"{get_settings().node_name}-{os.getpid()}-{index}"
