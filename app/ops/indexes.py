"""Adding the performance indexes of ``app.core.indexes`` to a live database, safely: what
``add_performance_indexes.py`` (the DBA's entry point, whose docstring is the manual) and
``python -m app indexes`` run.

PostgreSQL: ``CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS`` in autocommit under a
``lock_timeout``; an INVALID index is dropped concurrently and rebuilt; each touched table is
ANALYZEd. SQLite: ``CREATE [UNIQUE] INDEX IF NOT EXISTS`` then ``ANALYZE``.
"""

from __future__ import annotations

import argparse
import contextlib
import select
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from app.core.config import sqlalchemy_url
from app.core.indexes import PERFORMANCE_INDEXES, IndexDef, create_index_sql

CREATED = "created"
PRESENT = "already present"
REBUILT = "rebuilt"
FAILED = "failed"
MISSING = "missing"
INVALID = "invalid"
WOULD_CREATE = "would create"
WOULD_REBUILD = "would rebuild"

Log = Callable[[str], None]
# Set when Ctrl-C cancelled a PostgreSQL statement (see _interruptible_postgres).
CANCELLED = threading.Event()


@dataclass
class Result:
    name: str
    table: str
    status: str  # one of the constants above
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (CREATED, PRESENT, REBUILT, WOULD_CREATE, WOULD_REBUILD)

    def describe(self) -> str:
        return f"{self.status}: {self.error}" if self.error else self.status


@dataclass(frozen=True)
class _Existing:
    table: str
    valid: bool
    unique: bool
    definition: str


class SchemaNotMigrated(RuntimeError):
    """A table of the indexes is missing: the schema is older than the app's."""


def apply_indexes(
    engine_or_url: Engine | str,
    *,
    dry_run: bool = False,
    check: bool = False,
    lock_timeout: str = "5s",
    indexes: Sequence[IndexDef] = PERFORMANCE_INDEXES,
    log: Log | None = None,
) -> list[Result]:
    """Create the missing indexes (or only report them: ``check`` / ``dry_run``).

    ``log`` receives each SQL statement as it runs (or would run, with ``dry_run``).
    Raises :class:`SchemaNotMigrated` before changing anything if a table is missing.
    """
    owned = isinstance(engine_or_url, str)
    engine = _engine_for(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        # Autocommit: a concurrent build cannot run in a transaction, and on SQLite each
        # CREATE INDEX is then its own short write transaction.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return _Run(conn, dry_run=dry_run, check=check, lock_timeout=lock_timeout, log=log).run(indexes)
    finally:
        if owned:
            engine.dispose()


class _Run:
    def __init__(self, conn: Connection, *, dry_run: bool, check: bool, lock_timeout: str, log: Log | None):
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        self.dry_run = dry_run
        self.check = check
        self.lock_timeout = lock_timeout
        self.log = log or (lambda _sql: None)

    def run(self, indexes: Sequence[IndexDef]) -> list[Result]:
        self._require_tables({d.table for d in indexes})
        try:
            if self.pg:
                self._execute_settings()
            existing = self._existing([d.name for d in indexes])
            results = [self._one(d, existing.get(d.name)) for d in indexes]
            touched = sorted(
                {r.table for r in results if r.status in (CREATED, REBUILT, WOULD_CREATE, WOULD_REBUILD)}
            )
            for table in touched:
                self._analyze(table)
            return results
        finally:
            if self.pg and not (self.dry_run or self.check):
                # A pooled connection (the app's engine) must not keep these settings.
                self._quietly("RESET lock_timeout")
                self._quietly("RESET statement_timeout")

    # -- catalog ---------------------------------------------------------------------------------

    def _require_tables(self, tables: Iterable[str]) -> None:
        if self.pg:
            rows = self.conn.execute(
                text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema() AND c.relname = ANY(:t)"
                ),
                {"t": list(tables)},
            )
        else:
            rows = self.conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
        present = {r[0] for r in rows}
        missing = sorted(set(tables) - present)
        if missing:
            raise SchemaNotMigrated(
                f"table(s) {', '.join(missing)} missing: the schema is not migrated. "
                "Run `python -m app migrate` first (with the same DATABASE_URL), then run this again."
            )

    def _existing(self, names: list[str]) -> dict[str, _Existing]:
        if self.pg:
            rows = self.conn.execute(
                text(
                    "SELECT c.relname, t.relname, i.indisvalid AND i.indisready, i.indisunique,"
                    " pg_get_indexdef(i.indexrelid)"
                    " FROM pg_index i"
                    " JOIN pg_class c ON c.oid = i.indexrelid"
                    " JOIN pg_class t ON t.oid = i.indrelid"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = current_schema() AND c.relname = ANY(:names)"
                ),
                {"names": names},
            )
            return {r[0]: _Existing(r[1], bool(r[2]), bool(r[3]), r[4]) for r in rows}
        rows = self.conn.execute(text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index'"))
        return {
            r[0]: _Existing(r[1], True, (r[2] or "").upper().startswith("CREATE UNIQUE"), r[2] or "")
            for r in rows
            if r[0] in names
        }

    # -- one index -------------------------------------------------------------------------------

    def _one(self, d: IndexDef, found: _Existing | None) -> Result:
        if found is not None and (found.table != d.table or found.unique != d.unique):
            # Never "fix" someone else's index of the same name: a DBA has to look at it.
            error = f"an index of that name exists with another definition: {found.definition}"
            return Result(d.name, d.table, FAILED, error=error)
        if found is not None and found.valid:
            return Result(d.name, d.table, PRESENT)
        invalid = found is not None
        if self.check:
            return Result(d.name, d.table, INVALID if invalid else MISSING)
        statements = [create_index_sql(d, concurrently=self.pg)]
        if invalid:
            statements.insert(0, self._drop_sql(d))
        if self.dry_run:
            for sql in statements:
                self.log(sql)
            return Result(d.name, d.table, WOULD_REBUILD if invalid else WOULD_CREATE)
        start = time.perf_counter()
        try:
            for sql in statements:
                self._execute(sql)
        except DBAPIError as exc:
            error = _message(exc)
            if self.pg:
                error += self._drop_leftover(d)
            if CANCELLED.is_set():
                raise KeyboardInterrupt(f"{d.name}: {error}") from exc
            return Result(d.name, d.table, FAILED, time.perf_counter() - start, error)
        return Result(d.name, d.table, REBUILT if invalid else CREATED, time.perf_counter() - start)

    def _drop_leftover(self, d: IndexDef) -> str:
        """After a failed concurrent build: drop the INVALID index it leaves behind."""
        try:
            left = self._existing([d.name]).get(d.name)
            if left is None or left.valid:
                return ""
            self._execute(self._drop_sql(d))
        except DBAPIError as exc:
            return f" (the INVALID index it left could not be dropped: {_message(exc)}; run this again)"
        return " (the INVALID index it left was dropped)"

    def _drop_sql(self, d: IndexDef) -> str:
        return f"DROP INDEX {'CONCURRENTLY ' if self.pg else ''}IF EXISTS {d.name}"

    def _analyze(self, table: str) -> None:
        sql = f"ANALYZE {table}"
        if self.dry_run:
            self.log(sql)
            return
        if self.check:
            return
        try:
            self._execute(sql)
        except DBAPIError as exc:
            # The indexes are there and autovacuum analyzes eventually: a warning, not a failure.
            self.log(f"-- warning: {sql} failed ({_message(exc)}); run it by hand")

    # -- execution -------------------------------------------------------------------------------

    def _execute_settings(self) -> None:
        if self.dry_run:
            self.log(f"SET lock_timeout = '{self.lock_timeout}'")
            self.log("SET statement_timeout = 0")
            return
        if self.check:
            return
        # set_config() takes bind parameters (SET does not) and rejects a malformed value.
        self.conn.execute(text("SELECT set_config('lock_timeout', :v, false)"), {"v": self.lock_timeout})
        self.conn.execute(text("SELECT set_config('statement_timeout', '0', false)"))

    def _execute(self, sql: str) -> None:
        self.log(sql)
        self.conn.execute(text(sql))

    def _quietly(self, sql: str) -> None:
        with contextlib.suppress(DBAPIError):
            self.conn.execute(text(sql))


def _message(exc: DBAPIError) -> str:
    return " ".join(str(exc.orig).split())


# -- command line ---------------------------------------------------------------------------------


def format_table(results: Sequence[Result], status_width: int = 60) -> str:
    """The results as a text table; a long failure message wraps within the status column."""
    header = ("index", "table", "status", "seconds")
    rows = [
        (r.name, r.table, textwrap.wrap(r.describe(), status_width) or [""], f"{r.seconds:.2f}")
        for r in results
    ]
    w_name = max(len(x) for x in [header[0], *(r[0] for r in rows)])
    w_table = max(len(x) for x in [header[1], *(r[1] for r in rows)])
    w_status = max(len(x) for x in [header[2], *(line for r in rows for line in r[2])])
    lines = [
        f"{header[0]:<{w_name}}  {header[1]:<{w_table}}  {header[2]:<{w_status}}  {header[3]:>7}",
        "  ".join("-" * w for w in (w_name, w_table, w_status, 7)),
    ]
    for name, table, status, seconds in rows:
        lines.append(f"{name:<{w_name}}  {table:<{w_table}}  {status[0]:<{w_status}}  {seconds:>7}")
        lines.extend(f"{'':<{w_name}}  {'':<{w_table}}  {more}" for more in status[1:])
    return "\n".join(lines)


def summary(results: Sequence[Result], seconds: float) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in counts.items())
    failed = [r.name for r in results if r.status == FAILED]
    tail = f" (failed: {', '.join(failed)})" if failed else ""
    analyzed = sorted({r.table for r in results if r.status in (CREATED, REBUILT)})
    analyze = f"; analyzed {', '.join(analyzed)}" if analyzed else ""
    return f"{len(results)} indexes: {parts}{tail}{analyze}; {seconds:.2f} s"


def default_database_url() -> str:
    """``DATABASE_URL`` as the app reads it now, else the app's default SQLite file."""
    from app.core.config import Settings

    return Settings().sqlalchemy_url


def _engine_for(url: str) -> Engine:
    url = sqlalchemy_url(url)
    if url.startswith("postgresql"):
        return create_engine(
            url,
            poolclass=NullPool,
            connect_args={"connect_timeout": 10, "application_name": "add_performance_indexes"},
        )
    return create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})


def _interruptible_postgres() -> None:
    """Make Ctrl-C cancel the running statement on the server, then stop the run.

    psycopg2 otherwise ignores Ctrl-C until the statement ends (a build can take many
    minutes). Like ``psycopg2.extras.wait_select``, but remembering the interruption:
    the cancelled statement then fails like any other and would not stop the loop.
    """
    try:
        import psycopg2.extensions as ext
    except ImportError:
        return

    def wait(conn: Any) -> None:
        while True:
            try:
                state = conn.poll()
                if state == ext.POLL_OK:
                    return
                if state == ext.POLL_READ:
                    select.select([conn.fileno()], [], [])
                elif state == ext.POLL_WRITE:
                    select.select([], [conn.fileno()], [])
                else:
                    raise ext.OperationalError(f"bad state from poll: {state}")
            except KeyboardInterrupt:
                conn.cancel()
                CANCELLED.set()

    ext.set_wait_callback(wait)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="add_performance_indexes.py",
        description="Add the performance indexes (app.core.indexes) to a live database.",
    )
    parser.add_argument("--database-url", help="default: DATABASE_URL, else the app's default SQLite file")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the SQL it would run; change nothing")
    mode.add_argument("--check", action="store_true", help="exit 1 if an index is missing or invalid")
    parser.add_argument(
        "--lock-timeout", default="5s", help="PostgreSQL lock_timeout for each statement (default: 5s)"
    )
    args = parser.parse_args(argv)

    url = sqlalchemy_url(args.database_url) if args.database_url else default_database_url()
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    sqlite_file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if sqlite_file and sqlite_file != ":memory:" and not Path(sqlite_file).exists():
        # Connecting would silently create an empty file there.
        print(f"error: no SQLite database at {sqlite_file}", file=sys.stderr)
        return 2
    engine = _engine_for(url)
    verb = "checking" if args.check else "dry run on" if args.dry_run else "adding to"
    print(f"Performance indexes: {verb} {shown}")
    if engine.dialect.name == "postgresql":
        _interruptible_postgres()
    log: Log = print if args.dry_run else (lambda sql: print(f"  {sql}", flush=True))
    if args.check:
        log = lambda _sql: None  # noqa: E731
    start = time.perf_counter()
    try:
        results = apply_indexes(
            engine, dry_run=args.dry_run, check=args.check, lock_timeout=args.lock_timeout, log=log
        )
    except SchemaNotMigrated as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DBAPIError as exc:  # unreachable server, bad --lock-timeout, ...
        print(f"error: cannot use the database: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        print("an index left INVALID by a cancelled build is rebuilt by the next run", file=sys.stderr)
        return 130
    finally:
        engine.dispose()
    print(format_table(results))
    print(summary(results, time.perf_counter() - start))
    if args.dry_run:
        return 0
    if args.check:
        return 0 if all(r.status == PRESENT for r in results) else 1
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
