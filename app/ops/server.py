"""Start-up checks used by ``gunicorn_config.py``: the database connection budget, the
port, the open-files limit, the node's own run folder with the server's metrics folder and
control socket, and the one-time configuration summary."""

from __future__ import annotations

import errno
import os
import resource
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.core.config import sqlalchemy_url

FACE_WORKER_CONNECTIONS = 3


@dataclass(frozen=True)
class Budget:
    workers: int
    pool_size: int
    max_overflow: int
    face_workers: int

    @property
    def per_worker(self) -> int:
        return self.pool_size + self.max_overflow

    @property
    def total(self) -> int:
        # Each face worker process: its job, the job's lease heartbeat, and (PostgreSQL) the
        # LISTEN connection that wakes it.
        return self.workers * self.per_worker + FACE_WORKER_CONNECTIONS * self.face_workers

    def suggestion(self, available: int) -> tuple[int, int]:
        """(pool size, max overflow) per web worker that fit in ``available`` connections."""
        per_worker = max(2, (available - FACE_WORKER_CONNECTIONS * self.face_workers) // max(1, self.workers))
        pool = max(1, per_worker // 2)
        return pool, max(0, per_worker - pool)


def postgres_capacity(url: str, timeout: int = 3) -> tuple[int, int, int] | None:
    """(max_connections, reserved for superusers, connections in use by others), or None."""
    try:
        engine = create_engine(sqlalchemy_url(url), connect_args={"connect_timeout": timeout})
    except Exception:
        return None
    try:
        with engine.connect() as conn:
            max_conn = int(conn.execute(text("SHOW max_connections")).scalar_one())
            reserved = int(conn.execute(text("SHOW superuser_reserved_connections")).scalar_one())
            in_use = int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                        " AND backend_type = 'client backend'"
                    )
                ).scalar_one()
            )
    except Exception:
        return None
    finally:
        engine.dispose()
    return max_conn, reserved, in_use


@dataclass(frozen=True)
class PoolerLimits:
    max_client_conn: int
    default_pool_size: int


def pgbouncer_limits(url: str, timeout: int = 3) -> PoolerLimits | None:
    """PgBouncer's own limits, read from its admin console (the ``pgbouncer`` database, open
    to the ``admin_users`` and ``stats_users`` of its configuration), or None."""
    import psycopg2

    console = make_url(sqlalchemy_url(url)).set(drivername="postgresql", database="pgbouncer")
    try:
        conn = psycopg2.connect(console.render_as_string(hide_password=False), connect_timeout=timeout)
    except psycopg2.Error:
        return None
    try:
        conn.autocommit = True  # the console knows no transactions
        with conn.cursor() as cur:
            cur.execute("SHOW CONFIG")
            config = {row[0]: row[1] for row in cur.fetchall()}
        return PoolerLimits(int(config["max_client_conn"]), int(config["default_pool_size"]))
    except (psycopg2.Error, KeyError, ValueError):
        return None
    finally:
        conn.close()


def budget_report(
    budget: Budget,
    capacity: tuple[int, int, int] | None,
    *,
    pooler: PoolerLimits | None = None,
    behind_pooler: bool = False,
) -> tuple[bool, list[str]]:
    """(fits, lines to print). On SQLite ``capacity`` is None and there is nothing to check.
    Behind PgBouncer the node's connections go to the pooler: they are checked against its
    ``max_client_conn``, and its server pool against PostgreSQL's room."""
    lines = [
        f"database connections: {budget.workers} web workers x (DB_POOL_SIZE {budget.pool_size} + "
        f"DB_MAX_OVERFLOW {budget.max_overflow}) + {budget.face_workers} face workers"
        f" x {FACE_WORKER_CONNECTIONS}"
        f" = {budget.total} at most" + (", to PgBouncer" if behind_pooler else "")
    ]
    if behind_pooler:
        return _pooler_report(budget, capacity, pooler, lines)
    if capacity is None:
        return True, lines
    max_conn, reserved, in_use = capacity
    available = max_conn - reserved - in_use
    lines.append(
        f"PostgreSQL allows max_connections={max_conn} (- {reserved} reserved, - {in_use} in use by others)"
        f" = {available} available"
    )
    if budget.total <= available:
        return True, lines
    pool, overflow = budget.suggestion(available)
    lines += [
        f"!!! The server may open {budget.total} connections but PostgreSQL accepts only {available}:",
        "!!! under load, requests would fail with 'too many clients'.",
        f"!!! Set DB_POOL_SIZE={pool} DB_MAX_OVERFLOW={overflow} (or fewer WEB_CONCURRENCY workers,",
        "!!! or put PgBouncer in front and raise max_connections).",
    ]
    return False, lines


def _pooler_report(
    budget: Budget, capacity: tuple[int, int, int] | None, pooler: PoolerLimits | None, lines: list[str]
) -> tuple[bool, list[str]]:
    if pooler is None:
        lines.append(
            "PgBouncer's limits could not be read (add this user to its stats_users): check that every "
            "node's connections together stay within its max_client_conn"
        )
        return True, lines
    lines.append(
        f"PgBouncer allows max_client_conn={pooler.max_client_conn} (shared by every node) and opens "
        f"default_pool_size={pooler.default_pool_size} PostgreSQL connections per database and user"
    )
    fits = True
    if budget.total > pooler.max_client_conn:
        fits = False
        lines.append(
            f"!!! This node alone may open {budget.total} connections to PgBouncer, which accepts "
            f"{pooler.max_client_conn}: raise max_client_conn or lower DB_POOL_SIZE / DB_MAX_OVERFLOW."
        )
    if capacity is not None:
        max_conn, reserved, in_use = capacity
        room = max_conn - reserved
        lines.append(f"PostgreSQL allows max_connections={max_conn} (- {reserved} reserved); {in_use} in use")
        if pooler.default_pool_size > room:
            fits = False
            lines.append(
                f"!!! PgBouncer may open {pooler.default_pool_size} connections but PostgreSQL accepts "
                f"{room}: lower its default_pool_size."
            )
    return fits, lines


class RunDirError(RuntimeError):
    """RUN_DIR cannot be this server's own."""


def private_dir(path: Path) -> Path:
    """``path`` as a folder only this user can enter (created 0700 if missing). A folder there
    already must be a real folder of this user, not reachable by others: RUN_DIR's default
    lies in a directory every user can write to (/dev/shm), where another user could have made
    it first to read the metrics or receive the wake-ups."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RunDirError(f"{path} is not a folder of this user: remove it, or set RUN_DIR to another folder")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def same_disk(a: Path, b: Path) -> bool:
    """Whether two existing paths are on one file system (a full one stops both)."""
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


def control_socket(run_dir: Path) -> Path:
    """Gunicorn's control socket (``gunicornc -s PATH``) for this server: in ``run_dir``, named
    after the master's pid, so no other server replaces or deletes it. Sockets of this
    node's dead servers are removed."""
    for old in run_dir.glob("gunicorn-*.ctl"):
        pid = old.stem.removeprefix("gunicorn-")
        if pid.isdigit() and not _alive(int(pid)):
            old.unlink(missing_ok=True)
    return run_dir / f"gunicorn-{os.getpid()}.ctl"


def metrics_folder(run_dir: Path) -> Path:
    """This server's folder for prometheus-client's multiprocess files, under ``run_dir``:
    named after the host and the master's pid, so servers sharing a ``DATA_DIR`` never mix
    or wipe each other's figures. Folders left by dead servers of this host are removed."""
    parent = run_dir / "metrics"
    host = socket.gethostname()
    if parent.is_dir():
        for folder in parent.iterdir():
            name, _, pid = folder.name.rpartition("-")
            if name == host and pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)
    folder = parent / f"{host}-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def who_listens(port: int) -> str:
    if shutil.which("ss"):
        cmd = ["ss", "-Hltnp", f"sport = :{port}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    return ""


def port_problem(host: str, port: int) -> str | None:
    """A clear message if ``host:port`` cannot be bound, else None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                holder = who_listens(port)
                return (
                    f"Port {port} on {host} is already in use"
                    + (f" ({holder})" if holder else "")
                    + f". Stop that server (e.g. `fuser -k {port}/tcp`) or start this one on another port:"
                    f" PORT={port + 1} make run."
                )
            if exc.errno == errno.EACCES:
                return f"Not allowed to listen on port {port} (ports below 1024 need root). Use PORT=8000."
            return f"Cannot listen on {host}:{port}: {exc.strerror}."
    return None


def raise_open_files_limit(wanted: int) -> str:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft >= target:
        return f"open files limit: {soft}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    note = (
        ""
        if target >= wanted
        else f" (the hard limit {hard} stops it there: raise it with `ulimit -Hn` as root)"
    )
    return f"open files limit raised from {soft} to {target}{note}"


def masked_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
