"""Database engine, sessions and the declarative base.

One engine per process, built lazily and dropped in a forked child (Gunicorn forks
workers; a connection must never cross a fork). SQLite runs in WAL mode with a busy
timeout and foreign keys on, so several workers share the file without "database is
locked"; PostgreSQL gets a bounded pool (``DB_POOL_TIMEOUT``) with ``pool_pre_ping``.

SQLite lets one writer at a time in, and a writer that finds the file locked sleeps in
steps of up to 100 ms before trying again: when a crowd writes at once on a busy CPU, that
sleeping, not the writing, made the wait. So every write transaction of every process first
takes a file lock (``filelock``, polled every 2 ms) beside the database, taken at its first
INSERT/UPDATE/DELETE and released at its commit or rollback: writers queue there and go in
as soon as the previous one is done.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends
from filelock import FileLock
from filelock import Timeout as FileLockTimeout
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import QueuePool
from sqlalchemy.types import TypeDecorator

from app.core.config import Settings, get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:  # noqa: ARG002 - SQLAlchemy's signature
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:  # noqa: ARG002 - SQLAlchemy's signature
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def upsert_insert(session: Session, model: Any) -> Any:
    """An INSERT of ``model`` in the session's dialect, which has ``on_conflict_do_nothing`` /
    ``on_conflict_do_update`` (the two supported databases, PostgreSQL and SQLite)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class CountingQueuePool(QueuePool):
    """A QueuePool that also knows how many threads are waiting for a connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting = 0
        self._waiting_lock = threading.Lock()

    def _do_get(self) -> Any:
        with self._waiting_lock:
            self.waiting += 1
        try:
            return super()._do_get()
        finally:
            with self._waiting_lock:
                self.waiting -= 1


def pool_status(engine: Engine) -> dict[str, Any]:
    pool = engine.pool
    if isinstance(pool, QueuePool):
        return {
            "class": type(pool).__name__,
            "size": pool.size(),
            "checked_out": pool.checkedout(),
            "checked_in": pool.checkedin(),
            "overflow": max(0, pool.overflow()),
            "max_overflow": pool._max_overflow,
            "waiting": getattr(pool, "waiting", None),
            "timeout_seconds": pool.timeout(),
        }
    return {"class": type(pool).__name__}


def build_engine(settings: Settings, **overrides: Any) -> Engine:
    url = settings.sqlalchemy_url
    options: dict[str, Any] = {
        "poolclass": CountingQueuePool,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
    }
    if url.startswith("sqlite"):
        if ":memory:" not in url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Pooled too: opening a file connection and setting its pragmas on every session
        # costs more than the queries of a typical request.
        options.update(pool_pre_ping=False, pool_recycle=-1)
        options.update(overrides)
        timeout = settings.sqlite_busy_timeout_ms / 1000
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": timeout}
        if ":memory:" not in url:
            connect_args["factory"] = _write_queue_connection(f"{make_url(url).database}.write-lock", timeout)
        engine = create_engine(url, connect_args=connect_args, **options)
        event.listen(engine, "connect", _sqlite_on_connect(settings))
        event.listen(engine, "before_cursor_execute", _queue_sqlite_writer)
        return engine
    if url.startswith("postgresql"):
        options["connect_args"] = {
            "connect_timeout": settings.db_connect_timeout,
            "application_name": "event-photos",
        }
    options.update(overrides)
    return create_engine(url, **options)


def _sqlite_on_connect(settings: Settings) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


# A savepoint begins a transaction (pysqlite) that is there to write: its reads must see what
# its writes will be checked against, so it waits for the write queue before it starts.
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC", "SAVEPO")


def _write_queue_connection(lock_path: str, timeout: float) -> type[sqlite3.Connection]:
    class WriteQueueConnection(sqlite3.Connection):
        """A SQLite connection that holds the write file lock from its first write to the end
        of that transaction."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.write_lock = FileLock(lock_path, timeout=timeout, thread_local=False)

        def before_write(self) -> None:
            if not self.write_lock.is_locked:
                try:
                    self.write_lock.acquire(poll_interval=0.002)
                except FileLockTimeout:
                    raise sqlite3.OperationalError("database is locked") from None

        def _release(self) -> None:
            if self.write_lock.is_locked:
                self.write_lock.release(force=True)

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self._release()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self._release()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self._release()

    return WriteQueueConnection


def _queue_sqlite_writer(
    conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _executemany: bool
) -> None:
    dbapi = conn.connection.dbapi_connection
    before_write = getattr(dbapi, "before_write", None)
    if before_write is not None and statement.lstrip()[:6].upper() in _WRITES:
        before_write()


_engine: Engine | None = None
_sessionmaker: sessionmaker[Session] | None = None
_engine_overrides: dict[str, Any] = {}


def configure_engine(**overrides: Any) -> None:
    """Engine options of this process that differ from the web's (a face worker's small pool)."""
    dispose_engine()
    _engine_overrides.clear()
    _engine_overrides.update(overrides)


def get_engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = build_engine(get_settings(), **_engine_overrides)
    return _engine


def get_sessionmaker() -> sessionmaker[Session]:
    global _sessionmaker
    if _sessionmaker is None:
        _sessionmaker = sessionmaker(bind=get_engine(), expire_on_commit=False)
    return _sessionmaker


def dispose_engine() -> None:
    """Close this process's pool (shutdown, tests)."""
    global _engine, _sessionmaker
    if _engine is not None:
        _engine.dispose()
    _engine = None
    _sessionmaker = None


def _forget_engine_after_fork() -> None:
    # The parent's sockets must not be used (or closed) by the child: drop the
    # references without closing and let the child build its own pool.
    global _engine, _sessionmaker
    if _engine is not None:
        _engine.dispose(close=False)
    _engine = None
    _sessionmaker = None


os.register_at_fork(after_in_child=_forget_engine_after_fork)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work outside a request (workers, CLI, async routes' thread calls)."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_session() -> Iterator[Session]:
    """One session per request; the one place that commits or rolls back. It takes a pooled
    connection only at its first query."""
    with session_scope() as session:
        yield session


def release_connection(session: Session) -> None:
    """End a read-only phase of a request: the pooled connection goes back to the pool while
    the request does slow work that needs none (hashing a password); the session takes one
    again at its next query. Refuses to run with changes pending, so it never commits writes."""
    if session.new or session.dirty or session.deleted or session.info.get("flushed"):
        raise RuntimeError("release_connection() with changes pending: it would commit them")
    session.commit()


@event.listens_for(Session, "after_flush")
def _remember_flush(session: Session, _context: Any) -> None:
    session.info["flushed"] = True


@event.listens_for(Session, "after_transaction_end")
def _forget_flush(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop("flushed", None)


def write_blocked(engine: Engine, timeout: float) -> str | None:
    """Why a write transaction cannot start within ``timeout`` seconds, or None when one can.
    Nothing is written. SQLite: a place in the write queue, then SQLite's own write lock
    (``BEGIN IMMEDIATE``, rolled back at once), so a lock held by anyone (one of our
    transactions that never ends, a backup, an operator's ``sqlite3`` shell) is seen.
    PostgreSQL: a server that takes no writes (a standby)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            read_only = conn.exec_driver_sql("SHOW transaction_read_only").scalar()
            return "the database accepts no writes (read-only)" if read_only == "on" else None
        if engine.dialect.name != "sqlite":
            return None
        dbapi: Any = conn.connection.dbapi_connection
        deadline = time.monotonic() + timeout
        lock = getattr(dbapi, "write_lock", None)
        busy_ms = dbapi.execute("PRAGMA busy_timeout").fetchone()[0]
        try:
            if lock is not None:
                try:
                    lock.acquire(timeout=timeout, poll_interval=0.002)
                except FileLockTimeout:
                    return f"writes wait for another transaction for more than {timeout:g}s"
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
            dbapi.execute(f"PRAGMA busy_timeout={left_ms}")
            try:
                dbapi.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                return f"writes cannot start within {timeout:g}s ({exc})"
        finally:
            dbapi.rollback()  # ends the probe's transaction and frees its place in the queue
            dbapi.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    return None


def is_write_conflict(exc: BaseException) -> bool:
    """SQLite refused a write because another connection committed since this transaction's
    first read (its WAL snapshot is stale: SQLITE_BUSY at once, without waiting), or the write
    queue's wait ran out. Nothing in the transaction can fix it; running it again can."""
    return (
        isinstance(exc, sa_exc.OperationalError)
        and isinstance(exc.orig, sqlite3.OperationalError)
        and "database is locked" in str(exc.orig)
    )


def commit_now(session: Session) -> None:
    """End a request's writes in the route's own thread: the pooled connection goes back to
    the pool at once, rather than after the response is serialised and the dependency exits
    in another trip through the threadpool (under a saturated CPU that trip is the wait that
    ran other requests' pool checkouts out of time). A failed commit still raises in the
    route, so no success is answered for data that was not saved; the dependency's own
    commit then has nothing left to do."""
    session.commit()


# scope="function": commit before the response is sent, so a failed commit is an error
# response, never a 201 for data that was not saved.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
